// ciCache { ... }: runs a block with a ci-cache allocation of its own (`ci-cache setup`, then `ci-cache finish`).
//
// The step holds no logic (docs/cli.md is the contract): it maps its options to CLI flags, runs the CLI
// through `sh` or `bat`, puts the env that `setup` printed around the block, and hands `finish` the
// allocation's token and the build's result as Jenkins words it. ci-cache maps the result and decides its
// exit code; the step fails exactly when ci-cache exits non-zero. How ci-cache gets onto the agent:
// docs/install.md. CPS rules: everything kept across steps is a String, a boolean or a plain Map/List from
// JsonSlurperClassic; code that is not a step runs in @NonCPS helpers.
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
    int n = ciCacheCalls
    String job = o.job ? o.job.toString() : defaultJob(env.BUILD_TAG, env.EXECUTOR_NUMBER, n)
    List<String> flags = cliFlags(o, job)
    List<String> cli = o.install ? installCli(unix, o, n) : baseCommand(o)
    // A setup that fails stops here, before the block, and leaves nothing to finish (the CLI cleans up).
    Map info = parseSetup(setupJob(unix, cli, flags, o.install as boolean))
    if (info == null) {
        error('ciCache: `ci-cache setup --format json` printed no JSON object; its output is above.')
    }
    Map allocation = info.env instanceof Map ? (Map) info.env : [:]
    echo("ciCache: job ${info.job} (${info.mode}) in ${info.job_dir}")
    // The build's result as Jenkins words it: FAILURE when the block threw, ABORTED when it was
    // interrupted, currentBuild.currentResult when it returned. ci-cache maps the word.
    String status = 'FAILURE'
    boolean bodyDone = false
    def result = null
    try {
        withEnv(envList(info, unix)) {
            result = body()
        }
        bodyDone = true
    } catch (InterruptedException e) {
        // An abort (FlowInterruptedException is an InterruptedException).
        status = 'ABORTED'
        throw e
    } finally {
        if (bodyDone) {
            status = "${currentBuild.currentResult}".toString()
        }
        finishJob(unix, cli, flags, allocation, status, bodyDone)
    }
    return result
}

// Runs setup and returns its stdout. When it fails, tells a missing CLI (a clear error) from a CLI that
// ran and failed (its own message is in the log above).
String setupJob(boolean unix, List<String> cli, List<String> flags, boolean installed) {
    String failure = null
    try {
        return runCli(unix, cli + ['setup', '--format', 'json'] + flags, 'stdout')
    } catch (InterruptedException e) {
        throw e
    } catch (Exception e) {
        failure = e.message
    }
    if (!installed && runCli(unix, cli + ['--help'], 'status') != 0) {
        error(missingMessage(cli))
    }
    error("ciCache: `ci-cache setup` failed (${failure}); its output above says why.")
}

// Runs `ci-cache finish` for the allocation setup made (its root and token). finish's exit code is the
// step's, but a failure of finish must not hide the block's own exception.
def finishJob(boolean unix, List<String> cli, List<String> flags, Map allocation, String status, boolean bodyDone) {
    int rc = 0
    withEnv(handleEnv(allocation)) {
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

// The fallback of docs/install.md: a fresh venv in the workspace's temp dir for this call, with the pip
// requirement `install` names; returns the command that runs ci-cache from it.
List<String> installCli(boolean unix, Map o, int n) {
    String python = o.python ? o.python.toString() : (unix ? 'python3' : 'python')
    String venv = venvDir(env.WORKSPACE_TMP, env.WORKSPACE, n, unix)
    String venvPython = venv + (unix ? '/bin/python' : '\\Scripts\\python.exe')
    String spec = o.install.toString()
    echo("ciCache: installing ${spec} into ${venv}")
    int rc = runCli(unix, [python, '-m', 'venv', '--clear', venv], 'status')
    if (rc == 0) {
        rc = runCli(unix, [venvPython, '-m', 'pip', 'install', '--disable-pip-version-check', '--no-input',
                           '--quiet', spec], 'status')
    }
    if (rc != 0) {
        error("ciCache: installing ${spec} into ${venv} with ${python} failed with exit code ${rc}; its output " +
              'above says why. Install ci-cache on the agent once (docs/install.md), or set install: to a pip ' +
              'requirement the agent can reach.')
    }
    return [venvPython, '-m', 'ci_cache']
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
                          'executable', 'python', 'install', 'remoteUrl', 'remoteEndpoint', 'remotePush']
    for (Object key : (opts ?: [:]).keySet()) {
        if (!known.contains(key.toString())) {
            return "ciCache: unknown option '${key}'. Known options: ${known.join(', ')}.".toString()
        }
    }
    if (opts?.executable && opts?.python) {
        return 'ciCache: give executable: or python:, not both.'
    }
    if (opts?.install != null && !(opts.install instanceof CharSequence)) {
        return "ciCache: install: takes a pip requirement such as 'ci-cache' or 'ci-cache==0.1.0' (docs/install.md)."
    }
    if (opts?.install && opts?.executable) {
        return 'ciCache: give install: or executable:, not both (install: runs ci-cache from the venv it makes).'
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
    // Each option is the CLI flag of the same name (remoteUrl: --remote-url).
    for (String key : ['config', 'root', 'mode', 'merge', 'remoteUrl', 'remoteEndpoint', 'remotePush']) {
        if (o[key] != null) {
            flags << "--${key.replaceAll(/[A-Z]/) { String c -> '-' + c.toLowerCase() }}".toString()
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
String venvDir(Object workspaceTmp, Object workspace, int n, boolean unix) {
    // WORKSPACE_TMP is the workspace's own temp dir (WORKSPACE@tmp); no two running builds share it.
    String tmp = workspaceTmp ? workspaceTmp.toString() : "${workspace ?: '.'}@tmp".toString()
    return "${tmp}${unix ? '/' : '\\'}ci-cache-venv-${n}".toString()
}

@NonCPS
String missingMessage(List<String> cli) {
    return "ciCache: ci-cache was not found on this agent (tried `${cli.join(' ')}`). " +
           'Install it on the agent once (`pip install ci-cache` into a venv on PATH, `pipx install ci-cache` ' +
           "or `uv tool install ci-cache`; docs/install.md), or let the step install it with install: 'ci-cache', " +
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

// What finish needs besides the flags: the root and the token of the allocation setup made.
@NonCPS
List<String> handleEnv(Map allocation) {
    List<String> list = []
    for (String name : ['CI_CACHE_ROOT', 'CI_CACHE_TOKEN']) {
        if (allocation[name]) {
            list << "${name}=${allocation[name]}".toString()
        }
    }
    return list
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
