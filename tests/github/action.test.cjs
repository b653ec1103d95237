'use strict';
// Unit tests of the GitHub Action's JavaScript (actions/*.cjs) in a simulated runner: temp files for
// GITHUB_ENV/GITHUB_PATH/GITHUB_OUTPUT/GITHUB_STATE/GITHUB_STEP_SUMMARY, and stub `ci-cache` and
// `python` executables (sh scripts running a small node program) that log their arguments.
// Run: node --test tests/github/

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { describe, it, beforeEach, afterEach } = require('node:test');

const ACTION_DIR = path.resolve(__dirname, '..', '..', 'actions');
const lib = require(path.join(ACTION_DIR, 'lib.cjs'));

// The stubs are sh scripts; Windows runs of this suite would need .exe stubs.
const POSIX_ONLY = process.platform === 'win32' ? 'stub executables are sh scripts' : false;

const STUB_JS = String.raw`
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const [, , kind, ...argv] = process.argv;
const env = process.env;
const seen = Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('CI_CACHE_')));
fs.appendFileSync(env.STUB_LOG, JSON.stringify({ kind, argv, env: seen }) + '\n');
if (kind === 'python') {
  if (argv[0] === '-m' && argv[1] === 'venv') {
    // Make a venv whose python and ci-cache are stubs too, as a real venv would have them.
    const bin = path.join(argv[argv.length - 1], 'bin');
    fs.mkdirSync(bin, { recursive: true });
    for (const name of ['python', 'ci-cache']) {
      const kindOf = name === 'python' ? 'venv-python' : 'ci-cache';
      const script = '#!/bin/sh\nexec "' + process.execPath + '" "' + __filename + '" ' + kindOf + ' "$@"\n';
      fs.writeFileSync(path.join(bin, name), script, { mode: 0o755 });
    }
  }
  process.exit(Number(env.STUB_PYTHON_EXIT || 0));
}
if (kind === 'venv-python') process.exit(Number(env.STUB_PIP_EXIT || 0));
if (argv[0] === 'setup') {
  if (env.STUB_SETUP_STDOUT !== undefined) process.stdout.write(env.STUB_SETUP_STDOUT);
  process.stderr.write('stub: setting up\n');
  process.exit(Number(env.STUB_SETUP_EXIT || 0));
}
if (argv[0] === 'finish') {
  if (env.GITHUB_STEP_SUMMARY) fs.appendFileSync(env.GITHUB_STEP_SUMMARY, '### stub summary\n');
  process.exit(Number(env.STUB_FINISH_EXIT || 0));
}
process.exit(99);
`;

const SETUP_JSON = {
  job: 'gh-7-build-1',
  job_key: 'k0123456789',
  job_dir: '/srv/ci cache/jobs/k0123456789',
  mode: 'isolated',
  env: {
    UV_CACHE_DIR: '/srv/ci cache/jobs/k0123456789/uv',
    UV_LINK_MODE: 'copy',
    TMPDIR: '/srv/ci cache/jobs/k0123456789/tmp',
    CI_CACHE_JOB: 'gh-7-build-1',
    CI_CACHE_ROOT: '/srv/ci cache',
    CI_CACHE_TOKEN: '0123456789abcdef0123456789abcdef',
    MULTI_LINE: 'first\nsecond',
  },
  path_prepend: ['/srv/ci cache/bin-a', '/srv/ci cache/bin-b'],
  caches: { uv: '/srv/ci cache/jobs/k0123456789/uv', pip: '/srv/ci cache/jobs/k0123456789/pip' },
  warnings: ['seeding was partial: 100% of nothing'],
};

/** Parses a runner file command file the way the runner does (`k=v` and `k<<DELIM` blocks). */
function parseFileCommands(file) {
  const lines = fs.readFileSync(file, 'utf8').split(/\r?\n/);
  const values = {};
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === '') continue;
    const heredoc = line.indexOf('<<');
    const eq = line.indexOf('=');
    if (eq !== -1 && (heredoc === -1 || eq < heredoc)) {
      values[line.slice(0, eq)] = line.slice(eq + 1);
      continue;
    }
    assert.notEqual(heredoc, -1, `malformed line ${JSON.stringify(line)} in ${file}`);
    const name = line.slice(0, heredoc);
    const delimiter = line.slice(heredoc + 2);
    const body = [];
    for (i++; lines[i] !== delimiter; i++) {
      assert.ok(i < lines.length, `delimiter ${delimiter} not found in ${file}`);
      body.push(lines[i]);
    }
    values[name] = body.join('\n');
  }
  return values;
}

/** A simulated runner: a temp dir with spaces in its path, the file commands and the stubs. */
class Runner {
  constructor() {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'ci cache action '));
    this.temp = path.join(this.root, 'runner temp');
    this.stubDir = path.join(this.root, 'stub bin');
    fs.mkdirSync(this.temp);
    fs.mkdirSync(this.stubDir);
    this.files = {};
    for (const name of ['GITHUB_ENV', 'GITHUB_PATH', 'GITHUB_OUTPUT', 'GITHUB_STATE', 'GITHUB_STEP_SUMMARY']) {
      this.files[name] = path.join(this.root, 'files', `${name.toLowerCase()}.txt`);
    }
    fs.mkdirSync(path.join(this.root, 'files'));
    this.resetFiles();
    this.stubJs = path.join(this.root, 'stub.js');
    fs.writeFileSync(this.stubJs, STUB_JS);
    this.log = path.join(this.root, 'stub-log.jsonl');
    this.writeStub(path.join(this.stubDir, 'ci-cache'), 'ci-cache');
    this.python = path.join(this.stubDir, 'python3');
    this.writeStub(this.python, 'python');
  }

  writeStub(file, kind) {
    fs.writeFileSync(file, `#!/bin/sh\nexec "${process.execPath}" "${this.stubJs}" ${kind} "$@"\n`, { mode: 0o755 });
  }

  resetFiles() {
    for (const file of Object.values(this.files)) fs.writeFileSync(file, '');
  }

  /** Env of a step: the runner's files, inputs as INPUT_*, state as STATE_*, extra vars. */
  env(inputs = {}, state = {}, extra = {}) {
    const env = {
      PATH: [this.stubDir, path.dirname(process.execPath), '/usr/bin', '/bin'].join(path.delimiter),
      RUNNER_TEMP: this.temp,
      STUB_LOG: this.log,
      STUB_SETUP_STDOUT: JSON.stringify(SETUP_JSON),
      ...this.files,
      ...extra,
    };
    const defaults = { install: '', strict: 'false', 'job-status': 'success' };
    for (const [name, value] of Object.entries({ ...defaults, ...inputs })) {
      env[`INPUT_${name.toUpperCase()}`] = value;
    }
    for (const [name, value] of Object.entries(state)) env[`STATE_${name}`] = value;
    return env;
  }

  /** Runs actions/<step>.cjs as the runner would: `node <file>` with the env, in the workspace. */
  step(step, env) {
    const result = spawnSync(process.execPath, [path.join(ACTION_DIR, `${step}.cjs`)], {
      env,
      cwd: this.root,
      encoding: 'utf8',
    });
    return { ...result, calls: this.calls() };
  }

  calls() {
    if (!fs.existsSync(this.log)) return [];
    return fs
      .readFileSync(this.log, 'utf8')
      .split('\n')
      .filter((l) => l)
      .map((l) => JSON.parse(l));
  }

  read(name) {
    return parseFileCommands(this.files[name]);
  }

  pathLines() {
    return fs.readFileSync(this.files.GITHUB_PATH, 'utf8').split(/\r?\n/).filter((l) => l);
  }

  cleanup() {
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

describe('main step', { skip: POSIX_ONLY }, () => {
  let runner;
  beforeEach(() => {
    runner = new Runner();
  });
  afterEach(() => runner.cleanup());

  it('runs setup once with the mapped options, and hands outputs and state on', () => {
    const config = path.join(runner.root, 'my config', 'ci-cache.yml');
    const env = runner.env({
      config,
      mode: 'isolated',
      tools: 'uv,temp',
      merge: 'protected',
      job: 'my job',
      strict: 'true',
      'remote-url': 's3://fleet/team',
      'remote-endpoint': 'https://minio.example:9000',
      'remote-push': 'protected',
      args: `--root "${runner.root}/the root" --debug`,
    });
    const result = runner.step('main', env);
    assert.equal(result.status, 0, result.stdout + result.stderr);

    const setups = result.calls.filter((c) => c.argv[0] === 'setup');
    assert.equal(setups.length, 1, 'setup must run exactly once');
    assert.deepEqual(setups[0].argv, [
      'setup', '--format', 'github',
      '--config', config, '--job', 'my job', '--mode', 'isolated', '--tools', 'uv,temp',
      '--merge', 'protected', '--remote-url', 's3://fleet/team', '--remote-endpoint', 'https://minio.example:9000',
      '--remote-push', 'protected', '--strict', '--root', `${runner.root}/the root`, '--debug',
    ]);
    assert.match(result.stderr, /stub: setting up/, 'setup\'s stderr reaches the log');

    // `setup --format github` writes GITHUB_ENV and GITHUB_PATH (the CLI's GithubFormat, tested in
    // tests/unit/test_envformat.py and end to end under act): the action writes neither itself.
    assert.equal(fs.readFileSync(runner.files.GITHUB_ENV, 'utf8'), '');
    assert.equal(fs.readFileSync(runner.files.GITHUB_PATH, 'utf8'), '');
    assert.deepEqual(runner.read('GITHUB_OUTPUT'), {
      job: 'gh-7-build-1',
      'job-key': 'k0123456789',
      'job-dir': SETUP_JSON.job_dir,
      'cache-dir': SETUP_JSON.caches.uv,
      caches: JSON.stringify(SETUP_JSON.caches),
      mode: 'isolated',
    });
    assert.deepEqual(runner.read('GITHUB_STATE'), {
      exe: path.join(runner.stubDir, 'ci-cache'),
      job: 'gh-7-build-1',
      root: '/srv/ci cache',
      token: SETUP_JSON.env.CI_CACHE_TOKEN,
    });
    assert.match(result.stdout, /::warning title=ci-cache::seeding was partial: 100%25 of nothing/);
  });

  it('passes no options for empty inputs', () => {
    const result = runner.step('main', runner.env());
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.deepEqual(result.calls.map((c) => c.argv), [['setup', '--format', 'github']]);
  });

  for (const code of ['2', '4', '6']) {
    it(`fails the step when setup exits ${code}, and saves no state for post`, () => {
      const result = runner.step('main', runner.env({}, {}, { STUB_SETUP_EXIT: code, STUB_SETUP_STDOUT: '' }));
      assert.equal(result.status, 1);
      assert.match(result.stdout, new RegExp(`::error title=ci-cache::ci-cache setup exited with code ${code}`));
      assert.deepEqual(runner.read('GITHUB_STATE'), {});
      assert.deepEqual(runner.read('GITHUB_OUTPUT'), {});
    });
  }

  it('fails clearly when setup prints no JSON', () => {
    const result = runner.step('main', runner.env({}, {}, { STUB_SETUP_STDOUT: 'export X=1' }));
    assert.equal(result.status, 1);
    assert.match(result.stdout, /::error title=ci-cache::ci-cache setup --format github printed no valid JSON/);
  });

  it('fails clearly when ci-cache is not on PATH and install is empty', () => {
    fs.rmSync(path.join(runner.stubDir, 'ci-cache'));
    const result = runner.step('main', runner.env());
    assert.equal(result.status, 1);
    assert.match(result.stdout, /::error title=ci-cache::ci-cache is not on PATH: install it once on the runner/);
    assert.match(result.stdout, /docs\/install.md/);
    assert.deepEqual(result.calls, []);
  });

  it('fails outside a runner (no GITHUB_OUTPUT) instead of writing the outputs nowhere', () => {
    const env = runner.env();
    delete env.GITHUB_OUTPUT;
    const result = runner.step('main', env);
    assert.equal(result.status, 1);
    assert.match(result.stdout, /GITHUB_OUTPUT is not set/);
  });

  for (const [install, spec] of [
    ['source', lib.REPO_ROOT],
    ['ci-cache==0.4.1', 'ci-cache==0.4.1'],
    ['ci-cache', 'ci-cache'],
    ['git+https://git.example.test/ci-cache.git@v1', 'git+https://git.example.test/ci-cache.git@v1'],
  ]) {
    it(`install: ${install} makes a fresh venv under RUNNER_TEMP and pip-installs ${spec}`, () => {
      const result = runner.step('main', runner.env({ install, python: runner.python }));
      assert.equal(result.status, 0, result.stdout + result.stderr);
      const venv = path.join(runner.temp, 'ci-cache-venv');
      const [mkvenv, pip, setup, ...rest] = result.calls;
      assert.deepEqual(mkvenv, { kind: 'python', argv: ['-m', 'venv', '--clear', venv], env: {} });
      assert.equal(pip.kind, 'venv-python');
      assert.deepEqual(pip.argv.slice(0, 3), ['-m', 'pip', 'install']);
      assert.equal(pip.argv[pip.argv.length - 1], spec);
      assert.deepEqual(setup.argv, ['setup', '--format', 'github']);
      assert.deepEqual(rest, []);
      assert.equal(runner.read('GITHUB_STATE').exe, path.join(venv, 'bin', 'ci-cache'));
      assert.match(result.stdout, /::group::Installing ci-cache/);
      assert.match(result.stdout, /::endgroup::/);
    });
  }

  it('installs into the venv even when a ci-cache is on PATH: a named requirement wins', () => {
    const result = runner.step('main', runner.env({ install: 'ci-cache==9.9', python: runner.python }));
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.equal(runner.read('GITHUB_STATE').exe, path.join(runner.temp, 'ci-cache-venv', 'bin', 'ci-cache'));
  });

  it('fails when pip fails, naming what it installed', () => {
    const result = runner.step('main', runner.env({ install: 'ci-cache==1.0', python: runner.python }, {}, { STUB_PIP_EXIT: '1' }));
    assert.equal(result.status, 1);
    assert.match(result.stdout, /::error title=ci-cache::pip install ci-cache==1.0 exited with code 1/);
  });

  it('fails when the python for the venv cannot be started', () => {
    const missing = path.join(runner.root, 'no such', 'python3');
    const result = runner.step('main', runner.env({ install: 'source', python: missing }));
    assert.equal(result.status, 1);
    assert.match(result.stdout, /::error title=ci-cache::could not start .*no such/);
  });
});

describe('post step', { skip: POSIX_ONLY }, () => {
  let runner;
  beforeEach(() => {
    runner = new Runner();
  });
  afterEach(() => runner.cleanup());

  /** main, then post with main's state, as the runner sequences them. */
  function mainThenPost(inputs, postExtra = {}) {
    const first = runner.step('main', runner.env(inputs));
    assert.equal(first.status, 0, first.stdout + first.stderr);
    const state = runner.read('GITHUB_STATE');
    fs.writeFileSync(runner.log, '');
    runner.resetFiles();
    return runner.step('post', runner.env(inputs, state, postExtra));
  }

  it('runs finish for the job setup resolved, with its root, its token and the job status', () => {
    const result = mainThenPost({ 'job-status': 'success', tools: 'uv', args: '--debug' });
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.deepEqual(result.calls.map((c) => c.argv), [[
      'finish', '--root', '/srv/ci cache', '--job', 'gh-7-build-1', '--tools', 'uv', '--debug',
      '--status', 'success',
    ]]);
    // The token makes finish finalise this job's allocation and no other (docs/cli.md).
    assert.equal(result.calls[0].env.CI_CACHE_TOKEN, SETUP_JSON.env.CI_CACHE_TOKEN);
    assert.equal(fs.readFileSync(runner.files.GITHUB_STEP_SUMMARY, 'utf8'), '### stub summary\n');
  });

  it('hands finish the token main saved, not the one a later step put into the job env', () => {
    const result = mainThenPost({}, { CI_CACHE_TOKEN: 'another-allocations-token' });
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.equal(result.calls[0].env.CI_CACHE_TOKEN, SETUP_JSON.env.CI_CACHE_TOKEN);
  });

  it('hands finish the CI_CACHE_JOB that setup exported, which may differ from its display name', () => {
    const shown = { ...SETUP_JSON, job: 'github:o/r/7/1/build/', env: { ...SETUP_JSON.env, CI_CACHE_JOB: 'gh-7' } };
    const first = runner.step('main', runner.env({}, {}, { STUB_SETUP_STDOUT: JSON.stringify(shown) }));
    assert.equal(first.status, 0, first.stdout + first.stderr);
    assert.equal(runner.read('GITHUB_OUTPUT').job, 'github:o/r/7/1/build/');
    const result = runner.step('post', runner.env({}, runner.read('GITHUB_STATE')));
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.deepEqual(result.calls.at(-1).argv.slice(0, 5), ['finish', '--root', '/srv/ci cache', '--job', 'gh-7']);
  });

  it('a setup in mode off hands finish its `none` token: finish then finishes nothing', () => {
    const off = { job: 'gh-7', job_key: 'k1', job_dir: '.', mode: 'off', env: { CI_CACHE_TOKEN: 'none' } };
    const first = runner.step('main', runner.env({}, {}, { STUB_SETUP_STDOUT: JSON.stringify(off) }));
    assert.equal(first.status, 0, first.stdout + first.stderr);
    const result = runner.step('post', runner.env({}, runner.read('GITHUB_STATE')));
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.deepEqual(result.calls.at(-1).argv, ['finish', '--job', 'gh-7', '--status', 'success']);
    assert.equal(result.calls.at(-1).env.CI_CACHE_TOKEN, 'none');
  });

  // ci-cache maps the words (ci_cache/jobstatus.py, tests/unit/test_job_ownership.py): the action passes
  // the runner's word on as it is, unknown ones included.
  for (const given of ['success', 'failure', 'cancelled', 'Failure', 'neutral']) {
    it(`passes job-status '${given}' to finish as it is`, () => {
      const result = mainThenPost({ 'job-status': given });
      assert.equal(result.status, 0, result.stdout + result.stderr);
      assert.deepEqual(result.calls[0].argv.slice(-2), ['--status', given]);
      assert.doesNotMatch(result.stdout, /::warning/);
    });
  }

  it('leaves --status to ci-cache when job-status is empty', () => {
    const result = mainThenPost({ 'job-status': '' });
    assert.equal(result.status, 0);
    assert.ok(!result.calls[0].argv.includes('--status'));
  });

  // ci-cache's exit policy (docs/cli.md): finish exits 0 unless --strict or a usage error. The action
  // applies no policy of its own: any non-zero exit fails the post step, and 0 never does.
  for (const strict of ['false', 'true']) {
    it(`fails the post step when finish exits non-zero (strict: ${strict})`, () => {
      const result = mainThenPost({ strict }, { STUB_FINISH_EXIT: '4' });
      assert.equal(result.status, 1);
      assert.match(result.stdout, /::error title=ci-cache::ci-cache finish exited with code 4/);
      assert.equal(result.calls[0].argv.includes('--strict'), strict === 'true');
    });

    it(`succeeds when finish exits 0 (strict: ${strict})`, () => {
      const result = mainThenPost({ strict });
      assert.equal(result.status, 0, result.stdout + result.stderr);
      assert.doesNotMatch(result.stdout, /::(error|warning)/);
    });
  }

  it('fails when the saved ci-cache cannot be started', () => {
    const state = { exe: path.join(runner.root, 'gone', 'ci-cache'), job: 'j', root: '', token: 't' };
    const result = runner.step('post', runner.env({}, state));
    assert.equal(result.status, 1);
    assert.match(result.stdout, /::error title=ci-cache::could not start/);
  });

  it('does nothing when main did not set up a job', () => {
    const result = runner.step('post', runner.env({ strict: 'true' }));
    assert.equal(result.status, 0);
    assert.deepEqual(result.calls, []);
    assert.match(result.stdout, /nothing to finish/);
  });

  it('works when every path involved contains spaces', () => {
    const spaced = path.join(runner.root, 'a dir with spaces', 'ci-cache');
    fs.mkdirSync(path.dirname(spaced));
    runner.writeStub(spaced, 'ci-cache');
    const state = { exe: spaced, job: 'job with spaces', root: 'C:\\my root', token: 't' };
    const result = runner.step('post', runner.env({}, state));
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.deepEqual(result.calls[0].argv.slice(0, 5), ['finish', '--root', 'C:\\my root', '--job', 'job with spaces']);
    assert.match(result.stdout, /^ci-cache finish --root "C:\\my root" --job "job with spaces" --status success$/m);
  });
});

describe('helpers', () => {
  it('splits args on whitespace, with quotes grouping and backslashes literal', () => {
    assert.deepEqual(lib.splitArgs(''), []);
    assert.deepEqual(lib.splitArgs('  --debug  '), ['--debug']);
    assert.deepEqual(lib.splitArgs('--root "D:\\ci cache" --x \'a b\'c ""'), [
      '--root', 'D:\\ci cache', '--x', 'a bc', '',
    ]);
    assert.throws(() => lib.splitArgs('--root "D:\\x'), /unterminated " quote/);
  });

  it('reads booleans as the runner writes them', () => {
    assert.equal(lib.getBooleanInput({ INPUT_STRICT: 'True' }, 'strict'), true);
    assert.equal(lib.getBooleanInput({}, 'strict'), false);
    assert.throws(() => lib.getBooleanInput({ INPUT_STRICT: 'yes' }, 'strict'), /must be true or false/);
  });

  it('escapes workflow command messages', () => {
    assert.equal(lib.escapeCommand('50%\r\nnext'), '50%25%0D%0Anext');
  });

  it('finds only spawnable files on a Windows PATH, whatever the case of its name', () => {
    const files = new Set(['C:\\first dir\\ci-cache.cmd', 'C:\\second dir\\ci-cache.exe', 'C:\\py\\python.exe']);
    const isExec = (file) => files.has(file);
    const env = { Path: 'C:\\first dir;;C:\\second dir' };
    assert.equal(lib.which('ci-cache', env, 'win32', isExec), 'C:\\second dir\\ci-cache.exe');
    assert.equal(lib.which('python', env, 'win32', isExec), '');
    assert.equal(lib.which('C:\\py\\python', env, 'win32', isExec), 'C:\\py\\python.exe');
    assert.equal(lib.which('C:\\py\\python.exe', env, 'win32', isExec), 'C:\\py\\python.exe');
  });

  it('finds only executable files on a POSIX PATH', { skip: POSIX_ONLY }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci cache which '));
    try {
      fs.writeFileSync(path.join(dir, 'plain'), '', { mode: 0o644 });
      fs.writeFileSync(path.join(dir, 'tool'), '', { mode: 0o755 });
      const env = { PATH: `/nonexistent:${dir}` };
      assert.equal(lib.which('plain', env, 'linux'), '');
      assert.equal(lib.which('tool', env, 'linux'), path.join(dir, 'tool'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
