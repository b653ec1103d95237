// ciCache { ... }: runs a block with a ci-cache allocation of its own (`ci-cache setup`, then `ci-cache finish`).
//
// The step holds no cache logic: it maps its options to CLI flags, runs the CLI through `sh` or `bat`, and
// puts the env that `setup` printed around the block. CPS rules: everything kept across steps is a String,
// a boolean or a plain Map/List from JsonSlurperClassic; code that is not a step runs in @NonCPS helpers.
import com.cloudbees.groovy.cps.NonCPS
import groovy.json.JsonSlurperClassic
import groovy.transform.Field

// Calls of ciCache in this build so far: each call gets its own job id, so two blocks running at the
// same time (parallel branches, or one block nested in another) never share an allocation.
@Field int ciCacheCalls = 0

def call(Closure body) {
    return call([:], body)
}

def call(Map opts, Closure body) {
    String problem = optionProblem(opts)
    if (problem) {
        error(problem)
    }
    Map o = [:] + (opts ?: [:])
    boolean unix = isUnix()
    ciCacheCalls += 1
    String job = o.job ? o.job.toString() : defaultJob(env.BUILD_TAG, env.EXECUTOR_NUMBER, ciCacheCalls)
    List<String> flags = cliFlags(o, job)
    // found: the CLI runs, so finish must run too; cli: the command that runs it (install may change it).
    Map cli = [cmd: baseCommand(o), found: false]
    boolean bodyDone = false
    String status = 'failure'
    String root = null
    def result = null
    try {
        Map info = parseSetup(setupJob(unix, o, flags, cli))
        if (info == null) {
            error('ciCache: `ci-cache setup --format json` printed no JSON object; its output is above.')
        }
        root = info.env instanceof Map ? info.env.CI_CACHE_ROOT : null
        echo("ciCache: job ${info.job} (${info.mode}) in ${info.job_dir}")
        withEnv(envList(info, unix)) {
            result = body()
        }
        bodyDone = true
    } catch (InterruptedException e) {
        // An abort (FlowInterruptedException is an InterruptedException) is neither success nor failure.
        status = 'cancelled'
        throw e
    } finally {
        if (bodyDone) {
            status = buildStatus(currentBuild.currentResult)
        }
        if (cli.found) {
            finishJob(unix, cli.cmd, flags, root, status, bodyDone)
        }
    }
    return result
}

// Runs setup and returns its stdout. When it fails, tells a missing CLI (a clear error, or a pip install
// with install: true) from a CLI that ran and failed (its own message is in the log).
String setupJob(boolean unix, Map o, List<String> flags, Map cli) {
    Map attempt = trySetup(unix, cli.cmd, flags)
    if (!attempt.ok && runCli(unix, cli.cmd + ['--help'], 'status') != 0) {
        if (!o.install) {
            error(missingMessage(cli.cmd))
        }
        cli.cmd = installCli(unix, o, cli.cmd)
        attempt = trySetup(unix, cli.cmd, flags)
    }
    cli.found = true
    if (!attempt.ok) {
        error("ciCache: `ci-cache setup` failed (${attempt.error}); its output above says why.")
    }
    return attempt.out
}

Map trySetup(boolean unix, List<String> cmd, List<String> flags) {
    try {
        return [ok: true, out: runCli(unix, cmd + ['setup', '--format', 'json'] + flags, 'stdout')]
    } catch (InterruptedException e) {
        throw e
    } catch (Exception e) {
        return [ok: false, error: e.message]
    }
}

// Runs `ci-cache finish`; a failure of finish must not hide the block's own exception.
def finishJob(boolean unix, List<String> cli, List<String> flags, String root, String status, boolean bodyDone) {
    int rc = 0
    withEnv(root ? ["CI_CACHE_ROOT=${root}".toString()] : []) {
        rc = runCli(unix, cli + ['finish', '--status', status] + flags, 'status')
    }
    if (rc != 0) {
        String msg = "ciCache: `ci-cache finish --status ${status}` failed with exit code ${rc}; " +
                     'its output above says why.'
        if (bodyDone) {
            error(msg)
        }
        echo("WARNING: ${msg}")
    }
}

// pip-installs ci-cache with the agent's python, then returns the command that runs it.
List<String> installCli(boolean unix, Map o, List<String> cli) {
    String python = o.python ? o.python.toString() : (unix ? 'python3' : 'python')
    List<String> source = installArgs(o.installSource)
    echo("ciCache: ci-cache not found; installing it: ${python} -m pip install ${source.join(' ')}")
    int rc = runCli(unix, [python, '-m', 'pip', 'install', '--disable-pip-version-check'] + source, 'status')
    if (rc != 0) {
        error("ciCache: `${python} -m pip install ${source.join(' ')}` failed with exit code ${rc}. " +
              "Install ci-cache on this agent yourself, or set installSource: to a source pip can reach.")
    }
    if (runCli(unix, cli + ['--help'], 'status') == 0) {
        return cli
    }
    // pip put the script where PATH does not look (common on Windows): run the module instead.
    List<String> viaModule = [python, '-m', 'ci_cache']
    if (!o.executable && runCli(unix, viaModule + ['--help'], 'status') == 0) {
        return viaModule
    }
    error("ciCache: ci-cache was installed by `${python} -m pip` but `${cli.join(' ')}` still does not run. " +
          "Set executable: to the installed ci-cache, or python: to the interpreter that has it.")
}

// Runs one CLI command through sh or bat. what: 'stdout' returns its stdout, 'status' its exit code.
def runCli(boolean unix, List<String> argv, String what) {
    String script = commandLine(argv, unix)
    if (script == null) {
        error("ciCache: a command argument contains a line break, which no shell line can carry: ${argv}")
    }
    if (unix) {
        return what == 'stdout' ? sh(script: script, returnStdout: true) : sh(script: script, returnStatus: true)
    }
    return what == 'stdout' ? bat(script: script, returnStdout: true) : bat(script: script, returnStatus: true)
}

@NonCPS
String optionProblem(Map opts) {
    List<String> known = ['mode', 'tools', 'config', 'merge', 'strict', 'root', 'job', 'debug',
                          'executable', 'python', 'install', 'installSource']
    for (Object key : (opts ?: [:]).keySet()) {
        if (!known.contains(key.toString())) {
            return "ciCache: unknown option '${key}'. Known options: ${known.join(', ')}.".toString()
        }
    }
    if (opts?.executable && opts?.python) {
        return 'ciCache: give executable: or python:, not both.'
    }
    return null
}

@NonCPS
String defaultJob(Object buildTag, Object executor, int call) {
    // BUILD_TAG names the build, EXECUTOR_NUMBER the slot on this agent, the call count the block.
    return "${buildTag ?: 'jenkins'}-${executor ?: '0'}-${call}".toString()
}

@NonCPS
List<String> baseCommand(Map o) {
    if (o.python) {
        return [o.python.toString(), '-m', 'ci_cache']
    }
    return [(o.executable ?: 'ci-cache').toString()]
}

@NonCPS
List<String> cliFlags(Map o, String job) {
    List<String> flags = []
    for (String key : ['config', 'root', 'mode', 'merge']) {
        if (o[key] != null) {
            flags << "--${key}".toString()
            flags << o[key].toString()
        }
    }
    if (o.tools != null) {
        flags << '--tools'
        flags << (o.tools instanceof Collection ? o.tools.join(',') : o.tools.toString())
    }
    if (o.strict) {
        flags << '--strict'
    }
    if (o.debug) {
        flags << '--debug'
    }
    flags << '--job'
    flags << job
    return flags
}

@NonCPS
List<String> installArgs(Object source) {
    if (source == null) {
        return ['ci-cache']
    }
    if (source instanceof Collection) {
        return source.collect { it.toString() }
    }
    return [source.toString()]
}

@NonCPS
String missingMessage(List<String> cli) {
    return "ciCache: ci-cache was not found on this agent (tried `${cli.join(' ')}`). " +
           'Install it on the agent (pip install ci-cache), or let the step install it with ciCache(install: true), ' +
           "or point the step at it with executable: '/path/to/ci-cache' or python: '/path/to/python' " +
           '(runs python -m ci_cache).'
}

@NonCPS
Map parseSetup(String out) {
    String text = out ?: ''
    int start = text.indexOf('{')
    int end = text.lastIndexOf('}')
    if (start < 0 || end < start) {
        return null
    }
    // JsonSlurperClassic returns plain HashMap/ArrayList, which CPS can serialize between steps.
    Object parsed = new JsonSlurperClassic().parseText(text.substring(start, end + 1))
    return parsed instanceof Map ? (Map) parsed : null
}

@NonCPS
List<String> envList(Map info, boolean unix) {
    List<String> list = []
    Map vars = info.env instanceof Map ? (Map) info.env : [:]
    for (Map.Entry e : vars.entrySet()) {
        // An empty value unsets the variable in withEnv, as it does in the CLI's other formats.
        list << "${e.key}=${e.value == null ? '' : e.value}".toString()
    }
    List dirs = info.path_prepend instanceof List ? (List) info.path_prepend : []
    if (dirs) {
        // PATH+NAME=dir is withEnv's own way to prepend to PATH with the agent's separator.
        list << "PATH+CICACHE=${dirs.join(unix ? ':' : ';')}".toString()
    }
    return list
}

@NonCPS
String buildStatus(Object result) {
    String r = result == null ? 'SUCCESS' : result.toString()
    if (r == 'SUCCESS') {
        return 'success'
    }
    return r == 'ABORTED' ? 'cancelled' : 'failure'
}

// The script for sh or bat, or null when an argument cannot be put on one command line.
@NonCPS
String commandLine(List<String> argv, boolean unix) {
    if (argv.any { it.toString().contains('\n') || it.toString().contains('\r') }) {
        return null
    }
    if (unix) {
        return argv.collect { shQuote(it.toString()) }.join(' ')
    }
    // '@' keeps cmd from echoing the command line into the step's returned stdout.
    return '@' + argv.collect { winArg(it.toString()) }.join(' ')
}

@NonCPS
String shQuote(String s) {
    return "'" + s.replace("'", "'\"'\"'") + "'"
}

// One argument for a line of a .bat file (what `bat` runs): first quoted for the program's own parser
// (CommandLineToArgvW / the MS C runtime), then escaped for cmd, which reads the line before the program.
@NonCPS
String winArg(String s) {
    // Left bare only when nothing in it means anything to cmd (which also splits a command name at , ; =).
    if (s ==~ /[A-Za-z0-9_+.:\/\\@-]+/) {
        return s
    }
    String quoted = crtQuote(s)
    if (!s.contains('"')) {
        // Inside one "..." span cmd takes & | < > ^ ( ) literally; only % is expanded even there.
        return quoted.replace('%', '%%')
    }
    // Embedded quotes toggle cmd's quoting, so escape every cmd metacharacter, quotes included, with ^.
    return quoted.replaceAll(/[()!^"<>&|]/) { String m -> '^' + m }.replace('%', '%%')
}

@NonCPS
String crtQuote(String s) {
    StringBuilder b = new StringBuilder('"')
    int backslashes = 0
    for (int i = 0; i < s.length(); i++) {
        char c = s.charAt(i)
        if (c == ('\\' as char)) {
            backslashes++
            continue
        }
        // Backslashes are literal unless they precede a quote: then each one is doubled.
        b.append('\\' * ((c == ('"' as char)) ? 2 * backslashes + 1 : backslashes))
        b.append(c)
        backslashes = 0
    }
    b.append('\\' * (2 * backslashes)).append('"')
    return b.toString()
}
