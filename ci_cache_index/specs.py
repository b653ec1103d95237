"""What the index holds: `PackageSpec` and the demo and scale sets of them."""

from __future__ import annotations

from dataclasses import dataclass

from ci_cache_index.backend import dist_name, normalize, sdist_filename, wheel_filename


@dataclass(frozen=True)
class PackageSpec:
    """One generated distribution: a pure-Python wheel and/or an sdist of the same package."""

    name: str
    version: str = "1.0.0"
    deps: tuple[str, ...] = ()  # PEP 508 requirement strings -> Requires-Dist
    files: int = 3  # modules in the package besides __init__.py
    size: int = 1024  # approximate bytes per module
    sdist: bool = False
    wheel: bool = True
    ext: bool = False  # also ship a binary payload file (stands in for a native extension's bytes)

    @property
    def project(self) -> str:
        """PEP 503 normalised name, e.g. ``demo-alpha``."""
        return normalize(self.name)

    @property
    def dist(self) -> str:
        """Name as used in wheel/sdist file names and the import name, e.g. ``demo_alpha``."""
        return dist_name(self.name)

    @property
    def wheel_name(self) -> str:
        return wheel_filename(self.dist, self.version)

    @property
    def sdist_name(self) -> str:
        return sdist_filename(self.dist, self.version)


def demo_specs() -> list[PackageSpec]:
    """Eight packages in a small dependency graph; ``demo-eta`` is sdist-only, ``demo-theta`` ships both."""
    return [
        PackageSpec("demo-alpha", "1.0.0", deps=("demo-beta>=1.1", "demo-gamma")),
        PackageSpec("demo-beta", "1.0.0", deps=("demo-delta",)),
        PackageSpec("demo-beta", "1.2.0", deps=("demo-delta>=2",)),
        PackageSpec("demo-gamma", "0.3.0", deps=("demo-delta", "demo-epsilon")),
        PackageSpec("demo-delta", "2.0.0"),
        PackageSpec("demo-epsilon", "1.0.0", deps=("demo-zeta",), files=5),
        PackageSpec("demo-zeta", "0.9.0", ext=True),
        PackageSpec("demo-eta", "1.0.0", deps=("demo-theta",), sdist=True, wheel=False),
        PackageSpec("demo-theta", "1.1.0", sdist=True),
    ]


def scale_specs(n_packages: int, files_per_package: int, size: int = 1024) -> list[PackageSpec]:
    """``scale-pkg-NNNN`` packages without dependencies, for benchmarks that need big caches."""
    return [PackageSpec(f"scale-pkg-{i:04d}", "1.0.0", files=files_per_package, size=size) for i in range(n_packages)]
