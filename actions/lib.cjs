'use strict';
// The ci-cache GitHub Action: main = `ci-cache setup --format github`, post = `ci-cache finish`.
// It holds no logic (docs/cli.md is the contract): the CLI writes GITHUB_ENV and GITHUB_PATH itself, maps
// the job's status, and decides its exit code; this file maps inputs to options, turns setup's JSON into
// outputs and state, and fails a step exactly when the CLI exits non-zero. It writes only the runner's
// GITHUB_OUTPUT and GITHUB_STATE, directly, so that the action has no npm dependencies. Processes are
// always spawned with argument arrays, never through a shell, so that paths with spaces and pwsh/cmd
// runners behave the same. How ci-cache gets onto the runner: docs/install.md.

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

// The repository root: this file lives in <root>/actions/.
const REPO_ROOT = path.resolve(__dirname, '..');
const VENV_NAME = 'ci-cache-venv';

/** An error whose message is meant for the user (no stack trace). */
class ActionError extends Error {}

/** The runner passes input `foo-bar` as INPUT_FOO-BAR (upper case, spaces to `_`, hyphens kept). */
function getInput(env, name) {
  const value = env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`];
  return (value || '').trim();
}

/** YAML 1.2 core-schema booleans, as @actions/core accepts them; empty means false. */
function getBooleanInput(env, name) {
  const value = getInput(env, name);
  if (['true', 'True', 'TRUE'].includes(value)) return true;
  if (['false', 'False', 'FALSE', ''].includes(value)) return false;
  throw new ActionError(`input '${name}' must be true or false, not '${value}'`);
}

/** Values the main step saved with saveState; the runner hands them to post as STATE_<name>. */
function getState(env, name) {
  return env[`STATE_${name}`] || '';
}

/** Appends `name<<delimiter` blocks (safe for values with newlines) to one of the runner's files. */
function appendFileCommand(env, variable, name, value) {
  const file = env[variable];
  if (!file) {
    throw new ActionError(`${variable} is not set: ci-cache's action must run as a GitHub Actions step`);
  }
  const text = String(value);
  const delimiter = `ghadelimiter_${crypto.randomUUID()}`;
  if (name.includes(delimiter) || text.includes(delimiter)) {
    throw new ActionError(`the value of ${name} contains the delimiter ${delimiter}`);
  }
  fs.appendFileSync(file, `${name}<<${delimiter}${os.EOL}${text}${os.EOL}${delimiter}${os.EOL}`, 'utf8');
}

const setOutput = (env, name, value) => appendFileCommand(env, 'GITHUB_OUTPUT', name, value);
const saveState = (env, name, value) => appendFileCommand(env, 'GITHUB_STATE', name, value);

/** Workflow commands need %, CR and LF escaped in their message. */
function escapeCommand(text) {
  return String(text).replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

function log(line) {
  process.stdout.write(`${line}\n`);
}

const warning = (message) => log(`::warning title=ci-cache::${escapeCommand(message)}`);
const error = (message) => log(`::error title=ci-cache::${escapeCommand(message)}`);

/**
 * Splits the `args` input into arguments: whitespace separates, '...' and "..." group, and backslashes
 * are literal (Windows paths). No variables, globs or escapes: nothing runs through a shell.
 */
function splitArgs(text) {
  const args = [];
  let current = null;
  let quote = null;
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = null;
      else current += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      current = current === null ? '' : current;
    } else if (/\s/.test(ch)) {
      if (current !== null) args.push(current);
      current = null;
    } else {
      current = (current === null ? '' : current) + ch;
    }
  }
  if (quote) throw new ActionError(`input 'args' has an unterminated ${quote} quote`);
  if (current !== null) args.push(current);
  return args;
}

/** Looks a value up by name, case-insensitively on Windows (where Path and PATH are one variable). */
function envLookup(env, name, platform) {
  if (platform !== 'win32') return env[name];
  const key = Object.keys(env).find((k) => k.toUpperCase() === name.toUpperCase());
  return key === undefined ? undefined : env[key];
}

function isFile(file) {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function isExecutable(file, platform) {
  if (!isFile(file)) return false;
  if (platform === 'win32') return true;
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds a program on PATH and returns its absolute path, or '' when absent. On Windows only .exe and
 * .com count: Node refuses to spawn .bat/.cmd files without a shell. `isExec` is replaceable for tests.
 */
function which(name, env, platform = process.platform, isExec = isExecutable) {
  const p = platform === 'win32' ? path.win32 : path.posix;
  const exts = platform === 'win32' && !/\.(exe|com)$/i.test(name) ? ['.exe', '.com'] : [''];
  if (name.includes('/') || (platform === 'win32' && name.includes('\\'))) {
    for (const ext of exts) {
      const candidate = p.resolve(name + ext);
      if (isExec(candidate, platform)) return candidate;
    }
    return '';
  }
  const dirs = (envLookup(env, 'PATH', platform) || '').split(p.delimiter).filter((d) => d !== '');
  for (const dir of dirs) {
    for (const ext of exts) {
      const candidate = p.join(dir, name + ext);
      if (isExec(candidate, platform)) return p.resolve(candidate);
    }
  }
  return '';
}

/** Runs a program with an argument array (never a shell); fails clearly when it cannot start. */
function run(file, args, env, stdio) {
  const result = spawnSync(file, args, { env, stdio, encoding: 'utf8', windowsHide: true });
  if (result.error) {
    throw new ActionError(`could not start ${file}: ${result.error.message}`);
  }
  return result;
}

/** A command line for the log only (quotes arguments with spaces); never executed. */
function display(file, args) {
  const quote = (a) => (a.includes('"') ? JSON.stringify(a) : `"${a}"`);
  return [file, ...args].map((a) => (/[\s"']/.test(a) || a === '' ? quote(a) : a)).join(' ');
}

function describeExit(result) {
  return result.signal ? `was killed by ${result.signal}` : `exited with code ${result.status}`;
}

/**
 * What `pip install` gets (docs/install.md): null for an empty `install` (use the ci-cache on PATH),
 * this action's own checkout for `source`, else the input as it is (a requirement, a path, a VCS URL).
 */
function installSpec(install) {
  if (install === '') return null;
  if (install !== 'source') return install;
  if (!isFile(path.join(REPO_ROOT, 'pyproject.toml'))) {
    throw new ActionError(
      `install: source needs the ci-cache repository around the action, but ${REPO_ROOT} has no ` +
        'pyproject.toml; install ci-cache on the runner (docs/install.md) or name a pip requirement',
    );
  }
  return REPO_ROOT;
}

/** Makes ci-cache available as docs/install.md says; returns the absolute path of the executable. */
function installCiCache(env, platform = process.platform) {
  const spec = installSpec(getInput(env, 'install'));
  if (spec === null) {
    const exe = which('ci-cache', env, platform);
    if (!exe) {
      throw new ActionError(
        'ci-cache is not on PATH: install it once on the runner machine (e.g. `uv tool install ci-cache` ' +
          'or `pipx install ci-cache`, see docs/install.md), or set the input install: to a pip requirement ' +
          '(or `source`) for the action to install it into a venv in every job',
      );
    }
    return exe;
  }
  const p = platform === 'win32' ? path.win32 : path.posix;
  const python = getInput(env, 'python') || (platform === 'win32' ? 'python' : 'python3');
  const temp = env.RUNNER_TEMP || os.tmpdir();
  const venv = p.join(temp, VENV_NAME);
  const bin = platform === 'win32' ? p.join(venv, 'Scripts') : p.join(venv, 'bin');
  const exeSuffix = platform === 'win32' ? '.exe' : '';

  log(`::group::Installing ci-cache (${spec}) into ${venv}`);
  try {
    const created = run(python, ['-m', 'venv', '--clear', venv], env, ['ignore', 'inherit', 'inherit']);
    if (created.status !== 0) {
      throw new ActionError(`creating the venv with ${python} ${describeExit(created)}`);
    }
    const pip = [
      '-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--quiet', spec,
    ];
    const installed = run(p.join(bin, `python${exeSuffix}`), pip, env, ['ignore', 'inherit', 'inherit']);
    if (installed.status !== 0) {
      throw new ActionError(`pip install ${spec} ${describeExit(installed)}`);
    }
  } finally {
    log('::endgroup::');
  }
  const exe = p.join(bin, `ci-cache${exeSuffix}`);
  if (!isFile(exe)) throw new ActionError(`the install did not produce ${exe}`);
  return exe;
}

/** The options `setup` and `finish` share, from the inputs; `overrides` wins (values from main). */
function jobOptions(env, overrides = {}) {
  const args = [];
  const job = overrides.job || getInput(env, 'job');
  const valued = [
    ['config', getInput(env, 'config')],
    ['root', overrides.root || ''],
    ['job', job],
    ['mode', getInput(env, 'mode')],
    ['tools', getInput(env, 'tools')],
    ['merge', getInput(env, 'merge')],
    ['remote-url', getInput(env, 'remote-url')],
    ['remote-endpoint', getInput(env, 'remote-endpoint')],
    ['remote-push', getInput(env, 'remote-push')],
  ];
  for (const [name, value] of valued) {
    if (value) args.push(`--${name}`, value);
  }
  if (getBooleanInput(env, 'strict')) args.push('--strict');
  args.push(...splitArgs(getInput(env, 'args')));
  return args;
}

function parseSetupJson(stdout) {
  let data;
  try {
    data = JSON.parse(stdout);
  } catch (e) {
    throw new ActionError(`ci-cache setup --format github printed no valid JSON (${e.message}): ${stdout.slice(0, 200)}`);
  }
  if (data === null || typeof data !== 'object' || typeof data.env !== 'object' || data.env === null) {
    throw new ActionError('ci-cache setup --format github printed an object without "env"');
  }
  return data;
}

/** The main step: install, set up the job once (the CLI hands its env to later steps), save state for post. */
function main(env = process.env, platform = process.platform) {
  const exe = installCiCache(env, platform);
  const args = ['setup', '--format', 'github', ...jobOptions(env)];
  log(display('ci-cache', args));
  const result = run(exe, args, env, ['ignore', 'pipe', 'inherit']);
  if (result.status !== 0) {
    throw new ActionError(`ci-cache setup ${describeExit(result)}; see its message above`);
  }
  const data = parseSetupJson(result.stdout);
  const caches = data.caches && typeof data.caches === 'object' ? data.caches : {};
  // The allocation's handle, for this action's own post step: the identity in the form finish accepts
  // back (CI_CACHE_JOB; `job` is for display), its root, and the token that makes it this job's (cli.md).
  saveState(env, 'exe', exe);
  saveState(env, 'job', data.env.CI_CACHE_JOB || data.job || '');
  saveState(env, 'root', data.env.CI_CACHE_ROOT || '');
  saveState(env, 'token', data.env.CI_CACHE_TOKEN || '');
  setOutput(env, 'job', data.job || '');
  setOutput(env, 'job-key', data.job_key || '');
  setOutput(env, 'job-dir', data.job_dir || '');
  setOutput(env, 'cache-dir', caches.uv || '');
  setOutput(env, 'caches', JSON.stringify(caches));
  setOutput(env, 'mode', data.mode || '');
  for (const w of Array.isArray(data.warnings) ? data.warnings : []) warning(w);
  log(`ci-cache: job ${data.job || '?'} in ${data.mode || '?'} mode, job dir ${data.job_dir || '-'}`);
  return 0;
}

/**
 * The post step: `ci-cache finish` for the allocation main made (its job, root and token), with the
 * job's status as the runner words it. finish's exit code is the step's: the CLI exits 0 unless
 * `--strict` (or a usage error), so a merge problem fails the job only when strict asks for it.
 */
function post(env = process.env) {
  const exe = getState(env, 'exe');
  const job = getState(env, 'job');
  if (!exe || !job) {
    log('ci-cache: the main step did not set up a job; nothing to finish');
    return 0;
  }
  const args = ['finish', ...jobOptions(env, { job, root: getState(env, 'root') })];
  const status = getInput(env, 'job-status');
  if (status) args.push('--status', status);
  log(display('ci-cache', args));
  const result = run(exe, args, { ...env, CI_CACHE_TOKEN: getState(env, 'token') }, ['ignore', 'inherit', 'inherit']);
  if (result.status !== 0) {
    throw new ActionError(`ci-cache finish ${describeExit(result)}; see its message above`);
  }
  return 0;
}

/** Entry point for main.cjs and post.cjs: user errors become one ::error:: line and exit code 1. */
function entry(step) {
  try {
    process.exitCode = step();
  } catch (e) {
    error(e instanceof ActionError ? e.message : (e && e.stack) || String(e));
    process.exitCode = 1;
  }
}

module.exports = {
  ActionError,
  entry,
  escapeCommand,
  getBooleanInput,
  getInput,
  installCiCache,
  installSpec,
  jobOptions,
  main,
  post,
  splitArgs,
  which,
  REPO_ROOT,
};
