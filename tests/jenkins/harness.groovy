// Runs jenkins/vars/ciCache.groovy outside Jenkins, with the pipeline steps it uses mocked and `sh`/`bat`
// really executed, so that the real ci-cache CLI allocates and releases the job's cache.
//
// usage: groovy -cp tests/jenkins tests/jenkins/harness.groovy VARS_DIR WORK_DIR PYTHON [CASE_NAME_PART]
// env:   CI_CACHE_ROOT (a scratch root), PATH with ci-cache on it.
// Prints "ok - NAME" or "not ok - NAME: why" per case, then "N passed, M failed"; exits 1 on a failure.

class PipelineError extends RuntimeException {
    PipelineError(String message) {
        super(message)
    }
}

// What the body of a test pipeline threw on purpose.
class BodyFailure extends RuntimeException {
    BodyFailure(String message) {
        super(message)
    }
}

class EnvView {
    FakePipeline pipeline

    def propertyMissing(String name) {
        return pipeline.effectiveEnv()[name]
    }
}

// One agent and one build: the env Jenkins gives steps, the withEnv stack, and a record of every step.
class FakePipeline {
    boolean unix = true
    Map<String, String> baseEnv = [:]
    List<List<String>> overlays = []
    List<Map> steps = []
    List<String> echoes = []
    Expando currentBuild = new Expando(currentResult: 'SUCCESS')

    // Jenkins' EnvVars.override: "K=" unsets K, "PATH+X=dir" prepends dir with the agent's separator.
    Map<String, String> effectiveEnv() {
        Map<String, String> env = new LinkedHashMap<String, String>(baseEnv)
        for (List<String> overlay : overlays) {
            for (String pair : overlay) {
                int eq = pair.indexOf('=')
                String key = pair.substring(0, eq)
                String value = pair.substring(eq + 1)
                int plus = key.indexOf('+')
                if (plus > 0) {
                    String real = key.substring(0, plus)
                    if (value) {
                        env[real] = env[real] ? value + (unix ? ':' : ';') + env[real] : value
                    }
                } else if (value) {
                    env[key] = value
                } else {
                    env.remove(key)
                }
            }
        }
        return env
    }

    List<Map> stepsOf(String kind) {
        return steps.findAll { it.step == kind }
    }

    Binding binding() {
        Binding b = new Binding()
        b.setVariable('env', new EnvView(pipeline: this))
        b.setVariable('currentBuild', currentBuild)
        b.setVariable('isUnix', { -> unix })
        b.setVariable('sh', { Object args -> runStep('sh', args) })
        b.setVariable('bat', { Object args -> runStep('bat', args) })
        b.setVariable('echo', { Object msg ->
            echoes << msg.toString()
            System.err.println("[echo] ${msg}")
        })
        b.setVariable('error', { Object msg -> throw new PipelineError(msg.toString()) })
        b.setVariable('withEnv', { List vars, Closure body ->
            overlays << vars.collect { it.toString() }
            try {
                return body()
            } finally {
                overlays.remove(overlays.size() - 1)
            }
        })
        return b
    }

    Object runStep(String kind, Object args) {
        String script = args instanceof Map ? args.script.toString() : args.toString()
        boolean wantStdout = args instanceof Map && args.returnStdout
        boolean wantStatus = args instanceof Map && args.returnStatus
        if ((kind == 'sh') != unix) {
            throw new PipelineError("${kind} was called on a${unix ? ' Unix' : ' Windows'} agent")
        }
        Map<String, String> env = effectiveEnv()
        Map record = [step: kind, script: script, token: env.CI_CACHE_TOKEN]
        String stdout
        int rc
        if (kind == 'sh') {
            (rc, stdout) = execute(['/bin/sh', '-xe', '-c', script], env)
        } else {
            List<String> argv = CmdLine.parse(script, env)
            record.argv = argv
            String program = resolve(argv[0], env.PATH ?: '')
            if (program == null) {
                System.err.println("'${argv[0]}' is not recognized as an internal or external command,")
                System.err.println('operable program or batch file.')
                (rc, stdout) = [9009, '']
            } else {
                (rc, stdout) = execute([program] + argv.drop(1), env)
            }
            if (!script.startsWith('@')) {
                // cmd echoes each line of a batch file that does not start with @ before running it.
                stdout = "\r\n${env.WORKSPACE}>${script}\r\n" + stdout
            }
        }
        record.status = rc
        record.stdout = stdout
        steps << record
        if (wantStatus) {
            return rc
        }
        if (rc != 0) {
            throw new PipelineError("script returned exit code ${rc}")
        }
        return wantStdout ? stdout : null
    }

    // The agent here is Linux: PATH entries are ':'-separated, and withEnv's PATH+ adds ';' in bat mode.
    static String resolve(String program, String path) {
        if (program.contains('/')) {
            return new File(program).canExecute() ? program : null
        }
        for (String dir : path.split(/[;:]/)) {
            File f = new File(dir, program)
            if (dir && f.isFile() && f.canExecute()) {
                return f.path
            }
        }
        return null
    }

    static List execute(List<String> argv, Map<String, String> env) {
        ProcessBuilder pb = new ProcessBuilder(argv)
        pb.environment().clear()
        pb.environment().putAll(env)
        if (env.WORKSPACE) {
            pb.directory(new File(env.WORKSPACE))
        }
        pb.redirectError(ProcessBuilder.Redirect.INHERIT)
        Process proc = pb.start()
        proc.outputStream.close()
        String out = proc.inputStream.getText('UTF-8')
        return [proc.waitFor(), out]
    }
}

// ---------------------------------------------------------------------------------------------------------

File varsDir = new File(args[0])
File work = new File(args[1]).absoluteFile
// Absolute, so that the fake python of the install case cannot find itself on PATH.
String python = FakePipeline.resolve(args[2], System.getenv('PATH')) ?: args[2]
String only = args.length > 3 ? args[3] : null
String root = System.getenv('CI_CACHE_ROOT')
assert root: 'CI_CACHE_ROOT must point to a scratch directory'

// Jenkins adds NonCPS to the classpath and the library imports it; stand in for it here.
GroovyClassLoader loader = new GroovyClassLoader(this.class.classLoader)
loader.parseClass('''package com.cloudbees.groovy.cps
import java.lang.annotation.*
@Retention(RetentionPolicy.RUNTIME) @Target([ElementType.METHOD]) @interface NonCPS {}
''')

int buildNumber = 0

// A fresh agent env and a fresh instance of the step, as each Jenkins build gets.
def newPipeline = { Map extraEnv = [:] ->
    buildNumber++
    File ws = new File(work, "ws${buildNumber}")
    ws.mkdirs()
    FakePipeline p = new FakePipeline()
    p.baseEnv.putAll(System.getenv())
    p.baseEnv.putAll([BUILD_TAG: "jenkins-demo-${buildNumber}".toString(), EXECUTOR_NUMBER: '1',
                      WORKSPACE: ws.path, WORKSPACE_TMP: ws.path + '@tmp', NODE_NAME: 'agent-1',
                      JENKINS_URL: 'http://127.0.0.1:1/',
                      BUILD_NUMBER: buildNumber.toString(), JOB_NAME: 'demo'])
    p.baseEnv.putAll(extraEnv)
    Script step = new GroovyShell(loader, p.binding()).parse(new File(varsDir, 'ciCache.groovy'))
    return [p, step]
}

def setupJson = { Map stepRecord ->
    String out = stepRecord.stdout
    return new groovy.json.JsonSlurperClassic().parseText(out.substring(out.indexOf('{'), out.lastIndexOf('}') + 1))
}

def isUnder = { String path, String dir ->
    return new File(path).canonicalPath.startsWith(new File(dir).canonicalPath + File.separator)
}

// Where the real ci-cache is, for the cases that hide it or move it.
String realCli = FakePipeline.resolve('ci-cache', System.getenv('PATH'))
assert realCli: 'ci-cache must be on PATH'

Map<String, Closure> cases = [:]

cases['sh: the block runs with the env of its own job cache'] = {
    def (FakePipeline p, Script step) = newPipeline()
    Map seen = [:]
    // isolated: the job gets a private cache (auto would pick direct on a Linux agent).
    def result = step.call(mode: 'isolated') {
        seen.uv = p.effectiveEnv().UV_CACHE_DIR
        seen.job = step.env.CI_CACHE_JOB
        seen.existed = new File(seen.uv).isDirectory()
        // A real process started by a step sees the same env.
        seen.fromShell = step.sh(script: 'test -d "$UV_CACHE_DIR" && printf %s "$UV_CACHE_DIR"', returnStdout: true)
        return 'body result'
    }
    assert result == 'body result'
    List<Map> calls = p.stepsOf('sh')
    Map setup = calls[0]
    Map info = setupJson(setup)
    assert setup.script.startsWith("'ci-cache' 'setup' '--format' 'json' '--mode' 'isolated'")
    assert setup.script.endsWith("'--job' 'jenkins-demo-${p.baseEnv.BUILD_NUMBER}-1-1'")
    assert seen.job == 'jenkins-demo-' + p.baseEnv.BUILD_NUMBER + '-1-1'
    assert seen.existed
    assert seen.fromShell == seen.uv
    assert isUnder(seen.uv, info.job_dir)
    assert isUnder(info.job_dir, root)
    Map finish = calls[-1]
    assert finish.script.contains("'finish' '--status' 'SUCCESS'")
    assert finish.script.endsWith("'--job' '${info.job}'")
    assert finish.status == 0
    // finish carries the token setup made, so it finalises this allocation and no other.
    assert info.env.CI_CACHE_TOKEN ==~ /[0-9a-f]{32}/
    assert finish.token == info.env.CI_CACHE_TOKEN
    assert !new File(info.job_dir).exists(): 'finish releases and deletes the job dir'
    assert calls.size() == 3
}

cases['sh: a failing block still runs finish --status FAILURE, and its exception propagates'] = {
    def (FakePipeline p, Script step) = newPipeline()
    BodyFailure thrown = new BodyFailure('the build broke')
    String uv = null
    try {
        step.call(mode: 'isolated') {
            uv = p.effectiveEnv().UV_CACHE_DIR
            throw thrown
        }
        assert false: 'the exception of the block must propagate'
    } catch (BodyFailure e) {
        assert e.is(thrown)
    }
    Map finish = p.stepsOf('sh')[-1]
    assert finish.script.contains("'finish' '--status' 'FAILURE'")
    assert finish.status == 0
    assert uv != null && !new File(uv).exists()
    assert p.overlays.isEmpty(): 'withEnv was left'
}

cases['sh: finish gets the build result and an abort as Jenkins words them'] = {
    def (FakePipeline p, Script step) = newPipeline()
    p.currentBuild.currentResult = 'UNSTABLE'
    step.call { -> }
    assert p.stepsOf('sh')[-1].script.contains("'--status' 'UNSTABLE'")
    assert p.stepsOf('sh')[-1].status == 0
    p.currentBuild.currentResult = 'NOT_BUILT'
    step.call { -> }
    assert p.stepsOf('sh')[-1].script.contains("'--status' 'NOT_BUILT'")
    p.currentBuild.currentResult = 'SUCCESS'
    try {
        step.call { -> throw new InterruptedException('aborted by user') }
        assert false: 'the abort must propagate'
    } catch (InterruptedException e) {
        assert e.message == 'aborted by user'
    }
    assert p.stepsOf('sh')[-1].script.contains("'--status' 'ABORTED'")
    assert p.stepsOf('sh')[-1].status == 0
}

cases['sh: two blocks at once (parallel branches of one build) get two allocations'] = {
    def (FakePipeline p, Script step) = newPipeline()
    Map seen = [:]
    step.call(mode: 'isolated') {
        seen.outer = p.effectiveEnv().UV_CACHE_DIR
        step.call(mode: 'isolated') {
            seen.inner = p.effectiveEnv().UV_CACHE_DIR
            seen.bothExist = new File(seen.outer).isDirectory() && new File(seen.inner).isDirectory()
        }
        seen.outerAfterInner = new File(seen.outer).isDirectory()
    }
    assert seen.outer != seen.inner
    assert seen.bothExist
    assert seen.outerAfterInner: "finishing one block must not release the other's cache"
    List<String> jobs = p.stepsOf('sh').collect { (it.script =~ /'--job' '([^']+)'$/)[0][1] }
    String tag = "jenkins-demo-${p.baseEnv.BUILD_NUMBER}-1"
    assert jobs == ["${tag}-1", "${tag}-2", "${tag}-2", "${tag}-1"]*.toString()
    // The inner finish runs inside the outer block's env, yet carries the inner allocation's own token.
    List<Map> calls = p.stepsOf('sh')
    List<String> tokens = [setupJson(calls[0]).env.CI_CACHE_TOKEN, setupJson(calls[1]).env.CI_CACHE_TOKEN]
    assert tokens[0] != tokens[1]
    assert calls[2].token == tokens[1] && calls[3].token == tokens[0]
    assert calls.every { it.status == 0 }
}

cases['sh: options map to CLI flags (python -m ci_cache, job)'] = {
    def (FakePipeline p, Script step) = newPipeline()
    String uv = null
    step.call(python: python, mode: 'isolated', tools: ['uv', 'temp'], merge: 'never', job: 'nightly-7') {
        uv = p.effectiveEnv().UV_CACHE_DIR
    }
    Map setup = p.stepsOf('sh')[0]
    String py = "'" + python + "'"
    assert setup.script == "${py} '-m' 'ci_cache' 'setup' '--format' 'json' '--mode' 'isolated' '--merge' 'never' " +
        "'--tools' 'uv,temp' '--job' 'nightly-7'"
    assert setupJson(setup).job == 'nightly-7'
    assert uv != null
    assert p.stepsOf('sh')[-1].script == "${py} '-m' 'ci_cache' 'finish' '--status' 'SUCCESS' '--mode' 'isolated' " +
        "'--merge' 'never' '--tools' 'uv,temp' '--job' 'nightly-7'"
}

cases['the remote options map to the CLI flags of the same name'] = {
    def (FakePipeline p, Script step) = newPipeline()
    step.call(python: python, remoteUrl: 's3://fleet/team', remoteEndpoint: 'https://minio.invalid:9000',
              remotePush: 'never', job: 'fleet-1') { }
    String py = "'" + python + "'"
    String flags = "'--remote-url' 's3://fleet/team' '--remote-endpoint' 'https://minio.invalid:9000' " +
        "'--remote-push' 'never' '--job' 'fleet-1'"
    assert p.stepsOf('sh')[0].script == "${py} '-m' 'ci_cache' 'setup' '--format' 'json' " + flags
    assert p.stepsOf('sh')[-1].script == "${py} '-m' 'ci_cache' 'finish' '--status' 'SUCCESS' " + flags
    assert p.stepsOf('sh').every { it.status == 0 }
}

cases['bat: a Windows agent runs the CLI through bat with Windows quoting'] = {
    // Paths and a job id full of what cmd and the C runtime treat specially.
    File bin = new File(work, 'bin & tools (x86) 100%')
    bin.mkdirs()
    File exe = new File(bin, 'ci-cache')
    if (!exe.exists()) {
        java.nio.file.Files.createSymbolicLink(exe.toPath(), new File(realCli).toPath())
    }
    String weirdRoot = new File(work, 'root ^ & | < > %PATH% "q" (1) !x!').path
    def (FakePipeline p, Script step) = newPipeline([BUILD_TAG: 'jenkins-proj-feature%2Ffoo-7'])
    p.unix = false
    Map seen = [:]
    step.call(executable: exe.path, root: weirdRoot, mode: 'isolated') {
        seen.uv = p.effectiveEnv().UV_CACHE_DIR
        seen.existed = new File(seen.uv).isDirectory()
    }
    assert p.stepsOf('sh').isEmpty()
    List<Map> calls = p.stepsOf('bat')
    assert calls.size() == 2
    Map setup = calls[0]
    // The literal text handed to bat: @, the program quoted, % doubled, cmd operators inert.
    assert setup.script.startsWith('@"' + exe.path.replace('%', '%%') + '" setup --format json --root ')
    assert setup.script.contains('--job "jenkins-proj-feature%%2Ffoo-7-1-1"')
    assert setup.script.contains('\\^"q\\^"')
    assert setup.script.contains(' ^& ^| ^< ^> %%PATH%% ')
    // What the program receives once cmd and the C runtime have read that line.
    assert setup.argv == [exe.path, 'setup', '--format', 'json', '--root', weirdRoot, '--mode', 'isolated', '--job',
                          'jenkins-proj-feature%2Ffoo-7-1-1']
    assert setupJson(setup).job == 'jenkins-proj-feature%2Ffoo-7-1-1'
    assert seen.existed && isUnder(seen.uv, weirdRoot)
    Map finish = calls[1]
    assert finish.script.startsWith('@"')
    assert finish.argv == [exe.path, 'finish', '--status', 'SUCCESS', '--root', weirdRoot, '--mode', 'isolated',
                           '--job',
                           'jenkins-proj-feature%2Ffoo-7-1-1']
    assert finish.status == 0
    assert !new File(seen.uv).exists()
}

cases['bat: quoting round-trips any argument through the cmd and C runtime model'] = {
    def (FakePipeline p, Script step) = newPipeline()
    List<String> nasty = ['plain', 'a b', 'a&b', 'a|b', '<x>', '^', '100%', '%PATH%', '%1', 'a"b', '"', '""', '',
                          'a\\', 'a\\"b', 'a\\\\"b', 'C:\\Program Files\\x\\', '(x86)', '!x!', 'tab\there',
                          '& "quoted & stuff" | ^%x%^', 'C:\\a b\\', 'a,b;c=d', '\\\\server\\share\\"x"\\']
    for (String arg : nasty) {
        String line = step.commandLine(['C:\\Tools\\ci-cache.exe', arg, 'end'], false)
        assert line.startsWith('@')
        assert CmdLine.parse(line, [PATH: 'C:\\Windows', X: 'expanded']) == ['C:\\Tools\\ci-cache.exe', arg, 'end']
    }
    // And the model does catch what naive quoting gets wrong.
    List<String> naive = ['@ci-cache --root "a"b & c"', '@ci-cache --job feature%2Ffoo', '@ci-cache a | b']
    List<String> outcomes = naive.collect { line ->
        try {
            return CmdLine.parse(line, [:]).join(' ')
        } catch (IllegalArgumentException e) {
            return 'refused'
        }
    }
    assert outcomes == ['refused', 'ci-cache --job featureFfoo', 'refused']
    // Documented examples of the C runtime's argument parsing.
    assert CmdLine.argv('p "a b c" d e') == ['p', 'a b c', 'd', 'e']
    assert CmdLine.argv('p "ab\\"c" "\\\\" d') == ['p', 'ab"c', '\\', 'd']
    assert CmdLine.argv('p a\\\\\\b d"e f"g h') == ['p', 'a\\\\\\b', 'de fg', 'h']
    assert CmdLine.argv('p a\\\\\\"b c d') == ['p', 'a\\"b', 'c', 'd']
    assert CmdLine.argv('p a\\\\\\\\"b c" d e') == ['p', 'a\\\\b c', 'd', 'e']
}

cases['missing ci-cache gives a clear error and runs neither the block nor finish'] = {
    for (boolean unix : [true, false]) {
        def (FakePipeline p, Script step) = newPipeline([PATH: '/usr/bin:/bin'])
        p.unix = unix
        boolean ran = false
        try {
            step.call { ran = true }
            assert false: 'a missing ci-cache must fail the step'
        } catch (PipelineError e) {
            assert e.message.contains('ci-cache was not found on this agent')
            assert e.message.contains('pip install ci-cache')
            assert e.message.contains("install: 'ci-cache'")
            assert e.message.contains('docs/install.md')
            assert e.message.contains('executable:')
        }
        assert !ran
        assert !p.steps.any { it.script.contains('finish') }
    }
}

cases['install: makes a fresh venv in WORKSPACE_TMP, pip-installs the requirement and runs ci-cache from it'] = {
    // A stand-in for the agent's python: `-m venv --clear DIR` makes DIR/bin/python, a python that logs
    // its pip calls and otherwise is the real one (which has ci-cache), as a venv with ci-cache would be.
    File bin = new File(work, 'agent-python')
    bin.mkdirs()
    File log = new File(bin, 'calls.log')
    File py = new File(bin, 'python3')
    py.text = """#!/bin/sh
echo "agent \$*" >> '${log.path}'
if [ "\$1 \$2 \$3" = "-m venv --clear" ]; then
    mkdir -p "\$4/bin"
    printf '#!/bin/sh\\nif [ "\$1 \$2 \$3" = "-m pip install" ]; then echo "venv \$*" >> "${log.path}"; exit \${FAKE_PIP_EXIT:-0}; fi\\nexec "${python}" "\$@"\\n' > "\$4/bin/python"
    chmod +x "\$4/bin/python"
    exit 0
fi
exit 1
"""
    py.setExecutable(true)
    def (FakePipeline p, Script step) = newPipeline([PATH: "${bin.path}:/usr/bin:/bin".toString()])
    boolean ran = false
    step.call(install: 'ci-cache==0.1.0', mode: 'isolated') { ran = true }
    assert ran
    String venv = p.baseEnv.WORKSPACE + '@tmp/ci-cache-venv-1'
    assert log.readLines() == ["agent -m venv --clear ${venv}".toString(),
                               'venv -m pip install --disable-pip-version-check --no-input --quiet ci-cache==0.1.0']
    List<Map> calls = p.stepsOf('sh')
    assert calls[-2].script.startsWith("'${venv}/bin/python' '-m' 'ci_cache' 'setup' '--format' 'json'")
    assert calls[-1].script.startsWith("'${venv}/bin/python' '-m' 'ci_cache' 'finish' '--status' 'SUCCESS'")
    assert calls[-1].status == 0

    // pip fails: a clear error naming what and where; neither setup nor the block runs.
    log.text = ''
    def (FakePipeline p2, Script step2) = newPipeline([PATH: "${bin.path}:/usr/bin:/bin".toString(),
                                                      FAKE_PIP_EXIT: '3'])
    ran = false
    try {
        step2.call(install: 'ci-cache==0.1.0') { ran = true }
        assert false: 'a failed install must fail the step'
    } catch (PipelineError e) {
        assert e.message.contains('installing ci-cache==0.1.0 into') && e.message.contains('exit code 3')
        assert e.message.contains('docs/install.md')
    }
    assert !ran
    assert !p2.steps.any { it.script.contains("'setup'") || it.script.contains("'finish'") }
}

cases['a busy job id fails the step with ci-cache\'s own error; the block does not run, nothing is finished'] = {
    def (FakePipeline p, Script step) = newPipeline()
    Map seen = [:]
    step.call(mode: 'isolated', job: 'one-id') {
        seen.outer = p.effectiveEnv().UV_CACHE_DIR
        try {
            step.call(mode: 'isolated', job: 'one-id') { seen.innerRan = true }
            assert false: 'a busy job id must fail the step'
        } catch (PipelineError e) {
            seen.error = e.message
        }
        seen.outerIntact = new File(seen.outer).isDirectory()
    }
    assert seen.error.contains('`ci-cache setup` failed (script returned exit code 6)')
    assert !seen.innerRan
    assert seen.outerIntact: "the failed setup must not touch the first block's allocation"
    List<Map> calls = p.stepsOf('sh')
    // outer setup, inner setup (exit 6), the --help probe that tells a failing CLI from a missing one,
    // outer finish: the failed setup is followed by no finish at all.
    assert calls.collect { (it.script =~ /^'ci-cache' '([a-z-]+)'/)[0][1] } == ['setup', 'setup', '--help', 'finish']
    assert calls[1].status == 6
    assert calls[-1].status == 0
    assert !new File(seen.outer).exists()
}

cases['finish\'s exit code is the step\'s: non-zero fails the build (unless the block failed), zero never does'] = {
    // A ci-cache whose finish exits 4, as with strict and a failed merge.
    File bin = new File(work, 'finish-fails')
    bin.mkdirs()
    File fake = new File(bin, 'ci-cache')
    fake.text = "#!/bin/sh\nif [ \"\$1\" = finish ]; then '${realCli}' \"\$@\" >&2; exit 4; fi\nexec '${realCli}' \"\$@\"\n"
    fake.setExecutable(true)
    def (FakePipeline p, Script step) = newPipeline()
    boolean ran = false
    try {
        step.call(executable: fake.path, mode: 'isolated') { ran = true }
        assert false: 'a failing finish must fail the build'
    } catch (PipelineError e) {
        assert e.message.contains('`ci-cache finish --status SUCCESS` failed with exit code 4')
    }
    assert ran
    // The block failed: its own exception goes on, finish's failure is a warning beside it.
    BodyFailure thrown = new BodyFailure('the build broke')
    try {
        step.call(executable: fake.path, mode: 'isolated') { throw thrown }
        assert false
    } catch (BodyFailure e) {
        assert e.is(thrown)
    }
    assert p.echoes.any { it.startsWith('WARNING: ciCache: `ci-cache finish --status FAILURE` failed with exit code 4') }
    // The real ci-cache: finish exits 0 without strict even when there is nothing to merge.
    def (FakePipeline p2, Script step2) = newPipeline()
    step2.call(mode: 'off') { ran = true }
    assert p2.stepsOf('sh')[-1].token == 'none'
    assert p2.stepsOf('sh')[-1].status == 0
}

cases['a bad option value stops at setup with a clear error; an unknown option before any step'] = {
    def (FakePipeline p, Script step) = newPipeline()
    try {
        step.call(mdoe: 'isolated') { }
        assert false
    } catch (PipelineError e) {
        assert e.message.contains("unknown option 'mdoe'") && e.message.contains('mode')
    }
    assert p.steps.isEmpty()
    boolean ran = false
    try {
        step.call(mode: 'no-such-mode') { ran = true }
        assert false
    } catch (PipelineError e) {
        assert e.message.contains('`ci-cache setup` failed')
    }
    assert !ran
    assert !p.steps.any { it.script.contains("'finish'") }
    int before = p.steps.size()
    try {
        step.call(install: true) { }
        assert false
    } catch (PipelineError e) {
        assert e.message.contains('install: takes a pip requirement')
    }
    assert p.steps.size() == before
}

cases['CPS rules: no step in a @NonCPS method, no closure in CPS code but the withEnv block'] = {
    // Jenkins runs the step's methods CPS-transformed: a @NonCPS method must not call steps (or CPS
    // methods), and CPS code should keep closures to step blocks. Checked on the step's syntax tree.
    List<String> steps = ['sh', 'bat', 'isUnix', 'withEnv', 'echo', 'error']
    def nodes = new org.codehaus.groovy.ast.builder.AstBuilder().buildFromString(
        org.codehaus.groovy.control.CompilePhase.CONVERSION, false, new File(varsDir, 'ciCache.groovy').text)
    def scriptClass = nodes.find { it instanceof org.codehaus.groovy.ast.ClassNode }
    def methods = scriptClass.methods.findAll { !it.synthetic && it.lineNumber > 0 }
    def isNonCps = { m -> m.annotations.any { it.classNode.nameWithoutPackage == 'NonCPS' } }
    Set<String> cpsNames = (methods.findAll { !isNonCps(it) }*.name as Set) + steps
    List<String> problems = []
    methods.each { m ->
        Set<Object> stepBlocks = [] as Set
        m.code.visit(new org.codehaus.groovy.ast.CodeVisitorSupport() {
            void visitMethodCallExpression(org.codehaus.groovy.ast.expr.MethodCallExpression call) {
                if (isNonCps(m) && call.implicitThis && call.methodAsString in cpsNames) {
                    problems << "@NonCPS ${m.name} calls ${call.methodAsString}".toString()
                }
                if (call.methodAsString == 'withEnv') {
                    stepBlocks.addAll(call.arguments.expressions.findAll {
                        it instanceof org.codehaus.groovy.ast.expr.ClosureExpression })
                }
                super.visitMethodCallExpression(call)
            }

            void visitClosureExpression(org.codehaus.groovy.ast.expr.ClosureExpression closure) {
                if (!isNonCps(m) && !stepBlocks.contains(closure)) {
                    problems << "CPS method ${m.name} has a closure at line ${closure.lineNumber}".toString()
                }
                super.visitClosureExpression(closure)
            }
        })
    }
    assert methods*.name.containsAll(['call', 'runCli', 'commandLine', 'winArg'])
    assert methods.findAll { isNonCps(it) }*.name.containsAll(['commandLine', 'winArg', 'parseSetup', 'envList'])
    assert problems == []
}

int passed = 0
int failed = 0
cases.each { String name, Closure test ->
    if (only && !name.contains(only)) {
        return
    }
    try {
        test()
        println "ok - ${name}"
        passed++
    } catch (Throwable t) {
        println "not ok - ${name}: ${t.toString().readLines().join(' | ')}"
        t.printStackTrace()
        failed++
    }
}
println "${passed} passed, ${failed} failed"
System.exit(failed ? 1 : 0)
