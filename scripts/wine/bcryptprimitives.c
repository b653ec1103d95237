/* Stand-in for Windows' bcryptprimitives.dll, which Wine 8 lacks.
 *
 * Rust's std (and so uv.exe) gets random bytes from bcryptprimitives!ProcessPrng since Rust 1.78;
 * without this DLL uv.exe exits with code 53 (DLL not found) before printing anything. ProcessPrng
 * always succeeds on Windows; here it forwards to advapi32!SystemFunction036 (RtlGenRandom), which
 * Wine implements. Built by scripts/setup-wine.sh with gcc-mingw-w64-x86-64.
 */
#include <windows.h>

typedef BOOLEAN(WINAPI *rtl_gen_random_t)(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    static rtl_gen_random_t gen = NULL;
    if (gen == NULL) {
        HMODULE advapi = LoadLibraryA("advapi32.dll");
        if (advapi == NULL)
            return FALSE;
        gen = (rtl_gen_random_t)(void *)GetProcAddress(advapi, "SystemFunction036");
        if (gen == NULL)
            return FALSE;
    }
    while (len > 0) {
        /* RtlGenRandom takes a ULONG length: feed large requests in chunks. */
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!gen(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
