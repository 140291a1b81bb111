// mlTrainingPipeline(): a model repo in, a trained, evaluated and registered model out.
//
// This step stays thin: the bundled `mltp` helper CLI does the work. Here we only
// install the helper, pass options to it through the environment, map its exit
// codes to build results and publish its report.
//
// Rules this file keeps (tests/vars/ checks them):
//  - No value ever goes into shell text. Every sh script below is a constant,
//    single-quoted string; values reach it only as withEnv variables.
//  - AWS secrets arrive only through withCredentials, and only around the helper
//    calls that talk to AWS (sync, deploy, start, wait, stop).
//  - Helper failures end the build with one line: "[mlTrainingPipeline] <reason>".
//  - CPS-safe Groovy: no JsonSlurper, no closures passed to collection methods,
//    no @NonCPS methods.

import groovy.transform.Field

// Every option and its default. An option not listed here is an error.
@Field final Map DEFAULTS = [
    config        : 'config.yaml', // the pipeline config, relative to the repo root (or absolute)
    mode          : 'aws',         // 'aws': deploy to Step Functions, train on SageMaker, register
                                   // 'local': run everything on the agent against an embedded AWS emulator
                                   // 'validate': only check the model repo and config
    agent         : null,          // node label to run on; null = any agent
    region        : null,          // AWS region; null = aws.region from the config
    credentialsId : null,          // id of a Jenkins "AWS Credentials" entry; null = the agent's own role
    timeoutMinutes: 180,           // the whole build, waiting for an agent included; capped at MAX_TIMEOUT_MINUTES
    onGateFailure : 'FAILURE',     // build result when the metric gate fails: 'FAILURE' or 'UNSTABLE'
    helperCommand : null,          // path of a pre-installed `mltp`; nothing gets installed
    helperPipSpec : null,          // pip requirement, e.g. 'mltp==0.1.0': install from a package index, not the bundled wheel
    python        : 'python3',     // Python 3.9+ on the agent, used to install the helper
    scriptPython  : null,          // mode 'local': the Python that runs the model's scripts (with their
                                   // packages, e.g. scikit-learn); null = the helper's own interpreter
    defaultBranch : null,          // branch that registers and retrains on schedule; null = the multibranch primary branch
    pruneOlderThanDays: null,      // on the default branch's scheduled (timer) builds, also run `mltp prune --yes`:
                                   // delete branch state machines idle this many days and code no kept run uses; null = never
]

@Field final int MAX_TIMEOUT_MINUTES = 24 * 60
@Field final String PREFIX = '[mlTrainingPipeline] '   // starts every line the step itself writes
@Field final String REPORT_DIR = '.mltp/report'   // relative to the workspace; archived after Train
@Field final List MODES = ['aws', 'local', 'validate']
@Field final List GATE_RESULTS = ['FAILURE', 'UNSTABLE']
@Field final String HTML_REPORT = 'report.html'   // in REPORT_DIR: charts, CSP-safe for Jenkins' artifact pages
@Field final String TIMER_CAUSE = 'hudson.triggers.TimerTrigger$TimerTriggerCause'

// `mltp prune` on scheduled builds (the pruneOlderThanDays option); MLTP_OLDER_THAN comes from the environment.
@Field final String PRUNE_SCRIPT = '''#!/bin/sh
rm -f -- "$MLTP_ERROR_FILE" || exit 1
exec "$MLTP" prune --yes "$MLTP_REPO"
'''

// What the helper's exit codes mean (CONTRACT.md section 5), for fallback messages.
@Field final Map EXIT_MEANINGS = [
    1: 'the mltp helper hit an internal error',
    2: 'invalid input',
    3: 'the metric gate failed',
    4: 'the run failed',
    5: 'AWS refused the request or could not be reached',
    126: 'the mltp helper is not executable',
    127: 'the mltp helper was not found',
]

// ---------------------------------------------------------------------------
// Shell scripts. Constant text: values come only from the environment.
// The #!/bin/sh line keeps Jenkins from echoing every command (sh -x).
// ---------------------------------------------------------------------------

@Field final Map HELPER_SCRIPTS = [
    validate: '''#!/bin/sh
rm -f -- "$MLTP_ERROR_FILE" "$MLTP_INFO_FILE" || exit 1
exec "$MLTP" validate "$MLTP_REPO"
''',
    sync: '''#!/bin/sh
rm -f -- "$MLTP_ERROR_FILE" || exit 1
exec "$MLTP" sync "$MLTP_REPO"
''',
    deploy: '''#!/bin/sh
rm -f -- "$MLTP_ERROR_FILE" || exit 1
exec "$MLTP" deploy "$MLTP_REPO"
''',
    start: '''#!/bin/sh
rm -f -- "$MLTP_ERROR_FILE" || exit 1
exec "$MLTP" start "$MLTP_REPO"
''',
    wait: '''#!/bin/sh
rm -f -- "$MLTP_ERROR_FILE" || exit 1
exec "$MLTP" wait "$MLTP_REPO"
''',
    stop: '''#!/bin/sh
rm -f -- "$MLTP_ERROR_FILE" || exit 1
exec "$MLTP" stop "$MLTP_REPO"
''',
    run: '''#!/bin/sh
rm -f -- "$MLTP_ERROR_FILE" || exit 1
exec "$MLTP" run --local "$MLTP_REPO"
''',
]

// Installs the helper into a virtualenv cached on the agent, keyed by the content
// of what gets installed (or the pip spec) and the Python interpreter. The venv is
// built in a fresh directory and published with one `ln -s` (atomic; a concurrent
// build that loses the race uses the winner's), so a second build installs nothing.
// Reads: MLTP_INSTALL_PYTHON, MLTP_INSTALL_WHEEL + MLTP_INSTALL_REQUIREMENTS or
// MLTP_INSTALL_PIP_SPEC, MLTP_INSTALL_OUT, MLTP_ERROR_FILE; optional MLTP_CACHE_DIR.
// Writes the helper's path to MLTP_INSTALL_OUT.
@Field final String INSTALL_SCRIPT = '''#!/bin/sh
set -u
rm -f -- "$MLTP_ERROR_FILE" "$MLTP_INSTALL_OUT" || exit 1
build=
fail() {
  printf '%s\\n' "$1" > "$MLTP_ERROR_FILE"
  printf 'mltp install: %s\\n' "$1" >&2
  if [ -n "$build" ]; then
    rm -rf -- "$build"
  fi
  exit 2
}
py=$MLTP_INSTALL_PYTHON
command -v "$py" > /dev/null 2>&1 || fail "Python interpreter '$py' not found on this agent (the python option; Python 3.9+ is needed)"
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' || fail "'$py' is older than Python 3.9, which the mltp helper needs (the python option)"
if [ -n "${MLTP_INSTALL_PIP_SPEC:-}" ]; then
  set -- spec "$MLTP_INSTALL_PIP_SPEC"
else
  set -- file "$MLTP_INSTALL_WHEEL" file "$MLTP_INSTALL_REQUIREMENTS"
fi
key=$("$py" -c '
import hashlib, os, sys
h = hashlib.sha256()
h.update(os.path.realpath(sys.executable).encode() + b"|" + sys.version.encode() + b"|")
args = sys.argv[1:]
for i in range(0, len(args), 2):
    kind, value = args[i], args[i + 1]
    data = open(value, "rb").read() if kind == "file" else value.encode()
    h.update(kind.encode() + b"|" + hashlib.sha256(data).hexdigest().encode() + b"|")
print(h.hexdigest()[:24])
' "$@") || fail "could not compute the helper's cache key"
cache=${MLTP_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/mltp}
venv=$cache/venv-$key
if [ -L "$venv" ] && [ ! -x "$venv/bin/mltp" ]; then
  rm -f -- "$venv"
fi
if [ -x "$venv/bin/mltp" ]; then
  echo "mltp helper: cached in $venv"
else
  mkdir -p -- "$cache" || fail "cannot create the helper cache directory $cache"
  build=$(mktemp -d "$cache/build-$key.XXXXXX") || fail "cannot create a directory in $cache"
  chmod 755 "$build"
  echo "mltp helper: installing into $build"
  vpip() {
    "$build/bin/python" -m pip --disable-pip-version-check --no-input --quiet "$@"
  }
  "$py" -m venv "$build" || fail "could not create a virtualenv with '$py' (on Debian/Ubuntu: apt-get install python3-venv)"
  if [ -n "${MLTP_INSTALL_PIP_SPEC:-}" ]; then
    vpip install "$MLTP_INSTALL_PIP_SPEC" || fail "pip could not install '$MLTP_INSTALL_PIP_SPEC' (can the agent reach a package index?)"
  else
    if grep -q '^[^#[:space:]]' "$MLTP_INSTALL_REQUIREMENTS"; then
      vpip install --require-hashes -r "$MLTP_INSTALL_REQUIREMENTS" || fail "pip could not install the helper's pinned requirements (can the agent reach a package index? or set helperCommand)"
    fi
    vpip install --no-deps "$MLTP_INSTALL_WHEEL" || fail "pip could not install the bundled helper wheel"
  fi
  [ -x "$build/bin/mltp" ] || fail "the installed helper has no bin/mltp"
  if ln -sn "$build" "$venv" 2> /dev/null; then
    echo "mltp helper: installed in $venv"
  else
    rm -rf -- "$build"
    [ -x "$venv/bin/mltp" ] || fail "cannot publish the helper virtualenv at $venv"
    echo "mltp helper: another build installed it first: $venv"
  fi
fi
printf '%s\\n' "$venv/bin/mltp" > "$MLTP_INSTALL_OUT" || fail "cannot write $MLTP_INSTALL_OUT"
'''

// ---------------------------------------------------------------------------
// The step
// ---------------------------------------------------------------------------

def call(Map options = [:]) {
    Map cfg = resolveOptions(options == null ? [:] : options)
    long started = System.currentTimeMillis()
    timeout(time: cfg.timeoutMinutes, unit: 'MINUTES') {
        if (cfg.agent) {
            node(cfg.agent) {
                runOnAgent(cfg, started)
            }
        } else {
            node {
                runOnAgent(cfg, started)
            }
        }
    }
}

def runOnAgent(Map cfg, long started) {
    if (!isUnix()) {
        error(PREFIX + 'needs a Unix agent with sh; choose one with the agent option')
    }
    Map ctx = [cfg: cfg]
    stage('Validate') {
        def scmVars = checkout(scm)
        ctx.workspace = pwd()
        ctx.tmp = pwd(tmp: true) + '/mltp'
        ctx.errorFile = ctx.tmp + '/error.txt'
        ctx.infoFile = ctx.tmp + '/info.txt'
        writeFile(file: ctx.tmp + '/README.txt', text: 'Scratch files of the mlTrainingPipeline step.\n')
        dir(REPORT_DIR) {
            deleteDir()
        }
        ctx.mltp = installHelper(ctx)
        ctx.env = helperEnv(ctx, scmVars)
        runHelper(ctx, 'validate', false)
        Map info = readInfo(ctx.infoFile)
        applyJobProperties(cfg, info)
    }
    if (cfg.mode == 'validate') {
        return
    }
    boolean trainReached = false
    try {
        if (cfg.mode == 'aws') {
            stage('Deploy') {
                runHelper(ctx, 'sync', true)
                runHelper(ctx, 'deploy', true)
            }
        }
        stage('Train') {
            trainReached = true
            train(ctx, started)
        }
    } finally {
        if (trainReached) {
            stage('Report') {
                publishReport(ctx)
            }
        }
    }
}

// start + wait (or `run --local`). If the build is aborted or times out meanwhile,
// stop the execution, then rethrow the original interruption so the build is ABORTED.
def train(Map ctx, long started) {
    Map cfg = ctx.cfg
    List trainEnv = ctx.env + ['MLTP_TIMEOUT=' + remainingMinutes(cfg.timeoutMinutes, started)]
    String verb = cfg.mode == 'local' ? 'run' : 'start'
    int rc = 0
    withEnv(trainEnv) {
        withAws(cfg, cfg.mode == 'aws') {
            try {
                rc = sh(script: HELPER_SCRIPTS[verb], returnStatus: true, label: 'mltp ' + verb)
                if (rc == 0 && verb == 'start') {
                    verb = 'wait'
                    rc = sh(script: HELPER_SCRIPTS['wait'], returnStatus: true, label: 'mltp wait')
                }
            } catch (InterruptedException interruption) {
                if (cfg.mode == 'aws') {
                    stopRun(ctx)
                }
                throw interruption
            }
        }
    }
    checkExit(ctx, verb, rc)
}

def stopRun(Map ctx) {
    echo(PREFIX + 'build interrupted: stopping the Step Functions execution')
    try {
        int rc = sh(script: HELPER_SCRIPTS['stop'], returnStatus: true, label: 'mltp stop')
        if (rc != 0) {
            echo(PREFIX + 'mltp stop failed: ' + readReason(ctx.errorFile, 'stop', rc))
        }
    } catch (stopProblem) {
        echo(PREFIX + 'could not stop the execution: ' + stopProblem.getClass().getName())
    }
}

// Runs one helper verb in the shared environment and fails the build on a non-zero exit.
def runHelper(Map ctx, String verb, boolean needsAws) {
    int rc = 0
    withEnv(ctx.env) {
        withAws(ctx.cfg, needsAws) {
            rc = sh(script: HELPER_SCRIPTS[verb], returnStatus: true, label: 'mltp ' + verb)
        }
    }
    checkExit(ctx, verb, rc)
}

def withAws(Map cfg, boolean needsAws, Closure body) {
    if (needsAws && cfg.credentialsId) {
        withCredentials([[$class: 'AmazonWebServicesCredentialsBinding', credentialsId: cfg.credentialsId,
                          accessKeyVariable: 'AWS_ACCESS_KEY_ID', secretKeyVariable: 'AWS_SECRET_ACCESS_KEY']]) {
            body()
        }
    } else {
        body()
    }
}

def checkExit(Map ctx, String verb, int rc) {
    if (rc == 0) {
        return
    }
    String reason = readReason(ctx.errorFile, verb, rc)
    if (rc == 3) {
        String message = PREFIX + (reason.toLowerCase().startsWith('metric gate failed') ? reason : 'metric gate failed: ' + reason)
        if (ctx.cfg.onGateFailure == 'UNSTABLE') {
            markUnstable(message)
            return
        }
        error(message)
    }
    error(PREFIX + reason)
}

String readReason(String errorFile, String verb, int rc) {
    String reason = ''
    if (fileExists(errorFile)) {
        reason = firstLine(readFile(errorFile))
    }
    if (reason.startsWith(PREFIX)) {
        reason = reason.substring(PREFIX.length()).trim()
    }
    if (reason) {
        return reason
    }
    String meaning = EXIT_MEANINGS[rc] ?: 'unexpected exit code'
    return 'mltp ' + verb + ' failed with exit code ' + rc + ' (' + meaning + '); see the log above'
}

def markUnstable(String message) {
    try {
        unstable(message)
    } catch (NoSuchMethodError noStep) {
        echo message
        currentBuild.result = 'UNSTABLE'
    } catch (MissingMethodException noStep) {
        echo message
        currentBuild.result = 'UNSTABLE'
    }
}

// ---------------------------------------------------------------------------
// Helper installation
// ---------------------------------------------------------------------------

String installHelper(Map ctx) {
    Map cfg = ctx.cfg
    if (cfg.helperCommand) {
        echo(PREFIX + 'using the pre-installed helper ' + cfg.helperCommand)
        return cfg.helperCommand
    }
    String outFile = ctx.tmp + '/helper-path.txt'
    List installEnv = ['MLTP_INSTALL_PYTHON=' + cfg.python, 'MLTP_INSTALL_OUT=' + outFile, 'MLTP_ERROR_FILE=' + ctx.errorFile]
    if (cfg.helperPipSpec) {
        installEnv.add('MLTP_INSTALL_PIP_SPEC=' + cfg.helperPipSpec)
    } else {
        Map bundle = writeBundle(ctx.tmp + '/bundle')
        installEnv.add('MLTP_INSTALL_WHEEL=' + bundle.wheel)
        installEnv.add('MLTP_INSTALL_REQUIREMENTS=' + bundle.requirements)
    }
    int rc = 0
    withEnv(installEnv) {
        rc = sh(script: INSTALL_SCRIPT, returnStatus: true, label: 'install the mltp helper')
    }
    if (rc != 0) {
        error(PREFIX + 'could not install the mltp helper: ' + readReason(ctx.errorFile, 'install', rc))
    }
    String path = fileExists(outFile) ? firstLine(readFile(outFile)) : ''
    if (!path) {
        error(PREFIX + 'could not install the mltp helper: the installer reported no path')
    }
    return path
}

// Copies the bundled wheel and its pinned requirements from the library to the agent.
Map writeBundle(String bundleDir) {
    String wheel = ''
    String wheelBase64 = null
    String requirements = null
    String problem = null
    try {
        wheel = firstLine(libraryResource('mltp/bundle.txt'))
        if (wheel ==~ /mltp-[A-Za-z0-9_.+!]+-py3-none-any\.whl/) {
            wheelBase64 = libraryResource(resource: 'mltp/' + wheel, encoding: 'Base64')
            requirements = libraryResource('mltp/requirements.txt')
        } else {
            problem = "resources/mltp/bundle.txt names no helper wheel"
        }
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (missing) {
        problem = 'this copy of the library has no bundled helper (resources/mltp/)'
    }
    if (problem) {
        error(PREFIX + "${problem}; set helperCommand or helperPipSpec")
    }
    Map bundle = [wheel: bundleDir + '/' + wheel, requirements: bundleDir + '/requirements.txt']
    writeFile(file: bundle.wheel, text: wheelBase64, encoding: 'Base64')
    writeFile(file: bundle.requirements, text: requirements)
    return bundle
}

// ---------------------------------------------------------------------------
// Environment, info file, job properties, report
// ---------------------------------------------------------------------------

// Everything the helper is told, as KEY=value for withEnv. Registration and the
// branch are never forced from here: the helper decides them from Jenkins' own
// variables (BRANCH_NAME, CHANGE_ID, BRANCH_IS_PRIMARY) and MLTP_DEFAULT_BRANCH.
List helperEnv(Map ctx, def scmVars) {
    Map cfg = ctx.cfg
    List result = [
        'MLTP=' + ctx.mltp,
        'MLTP_REPO=' + ctx.workspace,
        'MLTP_CONFIG=' + cfg.config,
        'MLTP_REPORT_DIR=' + ctx.workspace + '/' + REPORT_DIR,
        'MLTP_ERROR_FILE=' + ctx.errorFile,
        'MLTP_INFO_FILE=' + ctx.infoFile,
        'PYTHONUNBUFFERED=1',
    ]
    if (cfg.region) {
        result.add('MLTP_REGION=' + cfg.region)
    }
    if (cfg.defaultBranch) {
        result.add('MLTP_DEFAULT_BRANCH=' + cfg.defaultBranch)
    }
    if (cfg.scriptPython) {
        result.add('MLTP_PYTHON=' + cfg.scriptPython)
    }
    // Pipeline's checkout returns GIT_COMMIT but does not export it.
    if (!env.GIT_COMMIT && scmVars instanceof Map && scmVars.GIT_COMMIT) {
        result.add('GIT_COMMIT=' + scmVars.GIT_COMMIT)
    }
    return result
}

// The info file: key=value lines written by `mltp validate` (name, schedule, state_machine, register).
Map readInfo(String infoFile) {
    Map info = [:]
    if (!fileExists(infoFile)) {
        return info
    }
    List lines = readFile(infoFile).readLines()
    for (int i = 0; i < lines.size(); i++) {
        String line = lines[i].trim()
        int eq = line.indexOf('=')
        if (line.startsWith('#') || eq <= 0) {
            continue
        }
        info[line.substring(0, eq).trim()] = line.substring(eq + 1).trim()
    }
    return info
}

def applyJobProperties(Map cfg, Map info) {
    List props = [
        disableConcurrentBuilds(abortPrevious: true),
        buildDiscarder(logRotator(numToKeepStr: '30', artifactNumToKeepStr: '30')),
    ]
    String schedule = info.schedule ?: ''
    if (schedule == 'null' || schedule == 'None') {
        schedule = ''
    }
    if (schedule && cfg.mode != 'validate') {
        if (isDefaultBranch(cfg, info)) {
            props.add(pipelineTriggers([cron(schedule)]))
            echo(PREFIX + "retraining on the schedule '${schedule}'")
        } else {
            echo(PREFIX + 'the schedule applies to the default branch only; not scheduling this branch')
        }
    }
    properties(props)
}

// The schedule belongs to the branch that registers. The helper says which that is
// (info `register`, from BRANCH_IS_PRIMARY, MLTP_DEFAULT_BRANCH, CHANGE_ID); without
// its verdict, the same rule here. Pull requests never get a schedule.
boolean isDefaultBranch(Map cfg, Map info) {
    if (env.CHANGE_ID) {
        return false
    }
    if (info.register == 'true' || info.register == 'false') {
        return info.register == 'true'
    }
    String branch = env.BRANCH_NAME ?: ''
    if (!branch) {
        return true     // not a multibranch job: it builds one branch
    }
    if (cfg.defaultBranch) {
        return branch == cfg.defaultBranch
    }
    return env.BRANCH_IS_PRIMARY == 'true'
}

def publishReport(Map ctx) {
    try {
        // The model itself stays in S3 and the registry, not in Jenkins.
        archiveArtifacts(artifacts: REPORT_DIR + '/**', excludes: REPORT_DIR + '/**/*.tar.gz', allowEmptyArchive: true)
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (problem) {
        echo(PREFIX + 'warning: could not archive the report: ' + problem.getMessage())
    }
    try {
        junit(testResults: REPORT_DIR + '/junit.xml', allowEmptyResults: true)
    } catch (NoSuchMethodError noPlugin) {
        echo(PREFIX + 'the JUnit plugin is not installed: gate rules are not published as tests')
    } catch (MissingMethodException noPlugin) {
        echo(PREFIX + 'the JUnit plugin is not installed: gate rules are not published as tests')
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (problem) {
        echo(PREFIX + 'warning: could not publish the gate results: ' + problem.getMessage())
    }
    boolean hasHtml = publishHtmlReport(ctx)
    try {
        String summary = ctx.workspace + '/' + REPORT_DIR + '/summary.txt'
        if (fileExists(summary)) {
            String line = firstLine(readFile(summary))
            if (line) {
                currentBuild.description = hasHtml ? line + ' ' + reportLink() : line
            }
        }
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (problem) {
        echo(PREFIX + 'warning: could not set the build description: ' + problem.getMessage())
    }
    pruneOnSchedule(ctx)
}

// report.html is archived with the rest; with the HTML Publisher plugin it also gets its
// own link on the job and build pages. True when there is a report.html to link to.
boolean publishHtmlReport(Map ctx) {
    if (!fileExists(ctx.workspace + '/' + REPORT_DIR + '/' + HTML_REPORT)) {
        return false
    }
    try {
        publishHTML(target: [reportDir: REPORT_DIR, reportFiles: HTML_REPORT, reportName: 'mltp report',
                             keepAll: true, alwaysLinkToLastBuild: true, allowMissing: true])
    } catch (NoSuchMethodError noPlugin) {
        echo(PREFIX + 'the HTML Publisher plugin is not installed: report.html is linked from the build description only')
    } catch (MissingMethodException noPlugin) {
        echo(PREFIX + 'the HTML Publisher plugin is not installed: report.html is linked from the build description only')
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (problem) {
        echo(PREFIX + 'warning: could not publish report.html: ' + problem.getMessage())
    }
    return true
}

// A link to the archived report.html (a link with the Safe HTML markup formatter).
String reportLink() {
    String base = env.BUILD_URL ?: ''
    return '<a href="' + base + 'artifact/' + REPORT_DIR + '/' + HTML_REPORT + '">report.html</a>'
}

// On the default branch's scheduled builds, with pruneOlderThanDays set: `mltp prune --yes`.
// Housekeeping never fails the build: a problem is a warning line.
def pruneOnSchedule(Map ctx) {
    Map cfg = ctx.cfg
    if (cfg.pruneOlderThanDays == null || cfg.mode != 'aws' || !ctx.env) {
        return
    }
    if (!isDefaultBranch(cfg, readInfo(ctx.infoFile)) || !timerTriggered()) {
        return
    }
    List pruneEnv = ctx.env + ['MLTP_OLDER_THAN=' + cfg.pruneOlderThanDays + 'd']
    try {
        int rc = 0
        withEnv(pruneEnv) {
            withAws(cfg, true) {
                rc = sh(script: PRUNE_SCRIPT, returnStatus: true, label: 'mltp prune')
            }
        }
        if (rc != 0) {
            echo(PREFIX + 'warning: mltp prune failed: ' + readReason(ctx.errorFile, 'prune', rc))
        }
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (problem) {
        echo(PREFIX + 'warning: mltp prune failed: ' + problem.getMessage())
    }
}

boolean timerTriggered() {
    try {
        return currentBuild.getBuildCauses(TIMER_CAUSE).size() > 0
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (problem) {
        return false    // a Jenkins too old to say: no housekeeping
    }
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

Map resolveOptions(Map options) {
    Map cfg = [:]
    cfg.putAll(DEFAULTS)
    List problems = []
    List keys = new ArrayList(options.keySet())
    for (int i = 0; i < keys.size(); i++) {
        String key = String.valueOf(keys[i])
        if (!DEFAULTS.containsKey(key)) {
            problems.add("unknown option '${key}'" + suggestion(key))
            continue
        }
        def value = options[keys[i]]
        if (value instanceof CharSequence) {
            value = value.toString()
        }
        if (value != null) {
            cfg[key] = value
        }
    }

    List stringKeys = ['config', 'mode', 'agent', 'region', 'credentialsId', 'onGateFailure',
                       'helperCommand', 'helperPipSpec', 'python', 'scriptPython', 'defaultBranch']
    for (int i = 0; i < stringKeys.size(); i++) {
        String key = stringKeys[i]
        if (cfg[key] != null && !(cfg[key] instanceof String)) {
            problems.add("${key} must be a string")
            cfg[key] = DEFAULTS[key]
        } else if (cfg[key] != null && cfg[key].trim() == '') {
            cfg[key] = DEFAULTS[key]
            if (cfg[key] != null) {
                problems.add("${key} must not be empty")
            }
        }
    }

    cfg.mode = cfg.mode.toLowerCase()
    if (!MODES.contains(cfg.mode)) {
        problems.add("mode must be one of ${MODES.join(', ')}, not '${cfg.mode}'")
    }
    cfg.onGateFailure = cfg.onGateFailure.toUpperCase()
    if (!GATE_RESULTS.contains(cfg.onGateFailure)) {
        problems.add("onGateFailure must be FAILURE or UNSTABLE, not '${cfg.onGateFailure}'")
    }
    if (cfg.region && !(cfg.region ==~ /[a-z]{2}(-[a-z]+)+-[0-9]+/)) {
        problems.add("region '${cfg.region}' is not an AWS region name (like eu-west-1)")
    }
    if (cfg.helperCommand && cfg.helperPipSpec) {
        problems.add('give helperCommand or helperPipSpec, not both')
    }

    def minutes = cfg.timeoutMinutes
    if (minutes instanceof String && minutes ==~ /[0-9]{1,9}/) {
        minutes = Integer.parseInt(minutes)
    }
    if (!(minutes instanceof Integer || minutes instanceof Long) || minutes < 1) {
        problems.add("timeoutMinutes must be a whole number of minutes, at least 1, not '${cfg.timeoutMinutes}'")
        minutes = DEFAULTS.timeoutMinutes
    }
    if (minutes > MAX_TIMEOUT_MINUTES) {
        echo(PREFIX + "timeoutMinutes ${minutes} is more than the maximum; using ${MAX_TIMEOUT_MINUTES}")
        minutes = MAX_TIMEOUT_MINUTES
    }
    cfg.timeoutMinutes = (int) minutes

    def days = cfg.pruneOlderThanDays
    if (days != null && !((days instanceof Integer || days instanceof Long) && days >= 1 && days <= 3650)) {
        problems.add("pruneOlderThanDays must be a whole number of days from 1 to 3650, not '${days}'")
    }

    if (problems) {
        error(PREFIX + 'invalid options: ' + problems.join('; '))
    }
    return cfg
}

// " (did you mean 'x'?)" for an unknown option close to a known one.
String suggestion(String key) {
    List known = new ArrayList(DEFAULTS.keySet())
    String best = null
    int bestDistance = 4
    for (int i = 0; i < known.size(); i++) {
        int d = editDistance(key.toLowerCase(), known[i].toLowerCase())
        if (d < bestDistance) {
            bestDistance = d
            best = known[i]
        }
    }
    return best ? " (did you mean '" + best + "'?)" : ' (known options: ' + known.join(', ') + ')'
}

int editDistance(String a, String b) {
    List previous = []
    for (int j = 0; j <= b.length(); j++) {
        previous.add(j)
    }
    for (int i = 1; i <= a.length(); i++) {
        List current = [i]
        for (int j = 1; j <= b.length(); j++) {
            int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1
            current.add(Math.min(Math.min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost))
        }
        previous = current
    }
    return previous[b.length()]
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

String firstLine(String text) {
    if (text == null) {
        return ''
    }
    List lines = text.readLines()
    for (int i = 0; i < lines.size(); i++) {
        String line = lines[i].trim()
        if (line) {
            return line.length() > 1000 ? line.substring(0, 1000) + '...' : line
        }
    }
    return ''
}

String remainingMinutes(int timeoutMinutes, long started) {
    long elapsed = (System.currentTimeMillis() - started).intdiv(60000)
    long remaining = timeoutMinutes - elapsed - 1   // let the helper time out first, with a clean report
    return String.valueOf(remaining < 1 ? 1 : remaining)
}
