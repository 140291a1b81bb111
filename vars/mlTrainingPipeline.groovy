// mlTrainingPipeline(): a model repo in, a trained, evaluated and registered model out.
//
// This step stays thin: the bundled `mltp` helper CLI does the work. Here we only
// name the options, have the shared runner (vars/mltpHelper.groovy) install the
// helper and run its verbs, map exit codes to build results and publish the report.
//
// Rules this file keeps (tests/vars/ checks them):
//  - No value ever goes into shell text: the runner's scripts are files from
//    resources/mltp/, run by constant text; values travel as withEnv variables.
//  - AWS secrets arrive only through withCredentials, and only around the helper
//    calls that talk to AWS (sync, deploy, start, wait, stop).
//  - Helper failures end the build with one line: "[mlTrainingPipeline] <reason>".
//  - CPS-safe Groovy: no JsonSlurper, no closures passed to collection methods,
//    no @NonCPS methods.

import groovy.transform.Field

@Field final String PREFIX = '[mlTrainingPipeline] '   // starts every line the step itself writes
@Field final String REPORT_DIR = '.mltp/report'   // relative to the workspace; archived after Train
@Field final String HTML_REPORT = 'report.html'   // in REPORT_DIR: charts, CSP-safe for Jenkins' artifact pages
@Field final String TIMER_CAUSE = 'hudson.triggers.TimerTrigger$TimerTriggerCause'

// ---------------------------------------------------------------------------
// The step
// ---------------------------------------------------------------------------

// Options: the table in vars/mltpHelper.groovy (OPTIONS), shared with the other steps.
// Returns the outcome (docs/contract.md 9.4): [result: passed|gate_missed|failed|invalid|aborted,
// message:, runName:, summary:, modelPackageArn:, modelPackageGroup:, version:, approvalStatus:,
// metrics:, champion:, reportUrl:, approval:]. A failed build still throws, as always;
// onOutcome is called with the same map in either case, outside any agent.
def call(Map options = [:]) {
    Map cfg = mltpHelper.resolveOptions('mlTrainingPipeline', options)
    long started = System.currentTimeMillis()
    Map outcome = [result: null, message: null, runName: null, summary: null, modelPackageArn: null, modelPackageGroup: null,
                   version: null, approvalStatus: null, metrics: [:], champion: null, reportUrl: null, approval: null]
    boolean finished = false
    try {
        Map ctx = null
        timeout(time: cfg.timeoutMinutes, unit: 'MINUTES') {
            ctx = mltpHelper.onAgent(cfg.agent) {
                runOnAgent(cfg, started, outcome)
            }
        }
        // The agent (and any credentials) is released before the question: a release
        // manager may take days, and the build holds nothing while it waits.
        if (cfg.approval != null && ctx != null) {
            outcome.approval = mlApproveModel.ask(cfg, ctx.approval, PREFIX)
            outcome.approvalStatus = outcome.approval.status ?: outcome.approvalStatus
        }
        outcome.result = outcome.result ?: 'passed'
        finished = true
    } catch (InterruptedException interruption) {
        outcome.result = 'aborted'
        outcome.message = 'the build was aborted or timed out'
        throw interruption
    } catch (Exception problem) {   // groovylint-disable-line CatchException
        outcome.result = outcome.result ?: 'failed'
        String line = String.valueOf(problem.getMessage())
        outcome.message = outcome.message ?: (line.startsWith(PREFIX) ? line.substring(PREFIX.length()) : line)
        throw problem
    } finally {
        if (!finished && outcome.result == null) {
            outcome.result = 'failed'
        }
        if (cfg.onOutcome != null) {
            mltpHelper.optionalStep(PREFIX, 'run onOutcome', 'onOutcome called a step this Jenkins does not have') {
                cfg.onOutcome.call(outcome)
            }
        }
    }
    return outcome
}

def runOnAgent(Map cfg, long started, Map outcome) {
    if (!isUnix()) {
        error(PREFIX + 'needs a Unix agent with sh; choose one with the agent option')
    }
    Map ctx = null
    stage('Validate') {
        ctx = prepareAgent(cfg)
        ctx.outcome = outcome
        runHelper(ctx, 'validate', false)
        // Only after validate: it refuses a committed `.mltp` symlink, through which
        // deleteDir() would empty a folder outside the workspace.
        dir(REPORT_DIR) {
            deleteDir()
        }
        Map info = mltpHelper.readKeyValues(ctx.infoFile)
        ctx.runName = info.run_name
        outcome.runName = info.run_name ?: null
        ctx.stateMachine = info.state_machine
        ctx.info = info
        applyJobProperties(cfg, info)
    }
    if (cfg.mode == 'validate') {
        return ctx
    }
    boolean trainReached = false
    try {
        if (cfg.mode == 'aws') {
            stage('Deploy') {
                runHelper(ctx, 'publish', true)   // sync + deploy in one helper process
            }
        }
        stage('Train') {
            trainReached = true
            train(ctx, started)
        }
        installTrigger(ctx)
    } finally {
        if (trainReached) {
            stage('Report') {
                publishReport(ctx)
                readOutcome(ctx)
            }
        }
    }
    if (cfg.approval != null) {
        ctx.approval = mlApproveModel.facts(cfg.mode, registers(mltpHelper.readKeyValues(ctx.infoFile)), ctx.report)
    }
    return ctx
}

// Checks the repo out on the current agent and installs the helper there.
// Returns the context every helper call uses: paths, the helper, its environment.
Map prepareAgent(Map cfg) {
    Map ctx = [cfg: cfg]
    def scmVars = checkout(scm)
    ctx.workspace = pwd()
    ctx.tmp = pwd(tmp: true) + '/mltp'
    ctx.errorFile = ctx.tmp + '/error.txt'
    ctx.infoFile = ctx.tmp + '/info.txt'
    writeFile(file: ctx.tmp + '/README.txt', text: 'Scratch files of the mlTrainingPipeline step.\n')
    Map helper = mltpHelper.install(prefix: PREFIX, tmp: ctx.tmp, errorFile: ctx.errorFile, python: cfg.python,
                                    lock: cfg.mode == 'local' ? 'local' : 'aws',
                                    helperCommand: cfg.helperCommand, helperPipSpec: cfg.helperPipSpec)
    ctx.mltp = helper.mltp
    ctx.helperSh = helper.helperSh
    ctx.env = helperEnv(ctx, scmVars)
    return ctx
}

// start + wait (or `run --local`). If the build is aborted or times out meanwhile,
// stop the execution, then rethrow the original interruption so the build is ABORTED.
// Any other exception is looked at (a lost agent?) and rethrown unchanged.
def train(Map ctx, long started) {
    Map cfg = ctx.cfg
    Map how = mltpHelper.trainVerb(cfg)   // start, run, or resume
    List trainEnv = ctx.env + how.env + ['MLTP_TIMEOUT=' + remainingMinutes(cfg.timeoutMinutes, started)]
    String verb = how.verb
    Map credentials = cfg.mode == 'aws' ? mltpHelper.awsCredentials(cfg) : null
    int rc = 0
    try {
        rc = mltpHelper.runVerb(verb, trainEnv, credentials)
        if (rc == 0 && verb == 'start') {
            verb = 'wait'
            rc = mltpHelper.runVerb('wait', trainEnv, credentials)
        }
    } catch (InterruptedException interruption) {
        if (cfg.mode == 'aws') {
            stopRun(ctx, trainEnv)
        }
        throw interruption
    } catch (Exception problem) {   // groovylint-disable-line CatchException
        if (cfg.mode == 'aws' && isAgentLoss(problem)) {
            stopAfterAgentLoss(ctx, problem.getClass().getName())
        }
        throw problem
    }
    if (rc == -1 && cfg.mode == 'aws') {
        // sh's status when the agent went away while the script ran.
        stopAfterAgentLoss(ctx, 'mltp ' + verb + ' ended with status -1')
        error(PREFIX + 'lost the connection to the agent during mltp ' + verb)
    }
    checkExit(ctx, verb, rc)
}

// Exceptions that mean the agent (or its connection) is gone, here or among the causes.
@Field final List AGENT_LOSS = [
    'hudson.remoting.ChannelClosedException',
    'hudson.remoting.RequestAbortedException',
    'java.nio.channels.ClosedChannelException',
    'org.jenkinsci.plugins.workflow.support.steps.AgentOfflineException',
]

boolean isAgentLoss(Throwable problem) {
    Throwable t = problem
    for (int depth = 0; t != null && depth < 10; depth++) {
        if (AGENT_LOSS.contains(t.getClass().getName())) {
            return true
        }
        t = t.getCause()
    }
    return false
}

// The agent that followed the run is gone, and the run goes on costing money.
// Stop it from another agent (a fresh checkout: `mltp stop` reads the config);
// when even that fails, say which run was left running.
def stopAfterAgentLoss(Map ctx, String why) {
    Map cfg = ctx.cfg
    String run = (ctx.runName ?: 'of this build') + (ctx.stateMachine ? ' (state machine ' + ctx.stateMachine + ')' : '')
    echo(PREFIX + 'lost the agent (' + why + '): stopping the Step Functions execution ' + run + ' from another agent')
    boolean stopped = false
    try {
        mltpHelper.onAgent(cfg.agent) {
            Map other = prepareAgent(cfg)
            int rc = mltpHelper.runVerb('stop', other.env, mltpHelper.awsCredentials(cfg))
            stopped = rc == 0
            if (!stopped) {
                echo(PREFIX + 'mltp stop failed: ' + mltpHelper.readReason(PREFIX, other.errorFile, 'stop', rc))
            }
        }
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (stopProblem) {
        echo(PREFIX + 'could not stop the execution from another agent: ' + stopProblem.getClass().getName())
    }
    if (!stopped) {
        echo(PREFIX + 'the Step Functions execution ' + run + ' was left running: stop it in the AWS console ' +
             'or with `mltp stop` (MLTP_RUN_NAME=' + (ctx.runName ?: 'the build tag') + ')')
    }
}

def stopRun(Map ctx, List trainEnv) {
    echo(PREFIX + 'build interrupted: stopping the Step Functions execution')
    try {
        int rc = mltpHelper.runVerb('stop', trainEnv, mltpHelper.awsCredentials(ctx.cfg))
        if (rc != 0) {
            echo(PREFIX + 'mltp stop failed: ' + mltpHelper.readReason(PREFIX, ctx.errorFile, 'stop', rc))
        }
    } catch (stopProblem) {
        echo(PREFIX + 'could not stop the execution: ' + stopProblem.getClass().getName())
    }
}

// The retrain-on-new-data trigger (option retrainTrigger): installed or updated on
// default-branch builds of mode aws whose config sets `retrain`, after Train.
def installTrigger(Map ctx) {
    Map cfg = ctx.cfg
    if (!cfg.retrainTrigger || cfg.mode != 'aws') {
        return
    }
    Map info = ctx.info ?: [:]
    if (!registers(info)) {
        echo(PREFIX + 'the retrain trigger belongs to the default branch; not installing it from this branch')
        return
    }
    if (info.retrain != 'true') {
        echo(PREFIX + 'retrainTrigger is on but the config sets no retrain: nothing to install')
        return
    }
    stage('Trigger') {
        List triggerEnv = ctx.env
        if (cfg.triggerRoleArn) {
            triggerEnv = triggerEnv + ['MLTP_TRIGGER_ROLE_ARN=' + cfg.triggerRoleArn]
        }
        checkExit(ctx, 'trigger-install', mltpHelper.runVerb('trigger-install', triggerEnv, mltpHelper.awsCredentials(cfg)))
    }
}

// Runs one helper verb in the shared environment and fails the build on a non-zero exit.
def runHelper(Map ctx, String verb, boolean needsAws) {
    checkExit(ctx, verb, mltpHelper.runVerb(verb, ctx.env, needsAws ? mltpHelper.awsCredentials(ctx.cfg) : null))
}

def checkExit(Map ctx, String verb, int rc) {
    if (rc == 0) {
        return
    }
    String reason = mltpHelper.readReason(PREFIX, ctx.errorFile, verb, rc)
    Map outcome = ctx.outcome ?: [:]
    outcome.result = rc == 2 ? 'invalid' : (rc == 3 ? 'gate_missed' : 'failed')
    outcome.message = reason
    if (rc == 3) {
        outcome.message = reason.toLowerCase().startsWith('metric gate failed') ? reason : 'metric gate failed: ' + reason
        String message = PREFIX + outcome.message
        if (ctx.cfg.onGateFailure == 'UNSTABLE') {
            markUnstable(message)
            return
        }
        error(message)
    }
    error(PREFIX + reason)
}

def markUnstable(String message) {
    if (mltpHelper.optionalStep(PREFIX, 'mark the build unstable', null) { unstable(message) } != 'ok') {
        echo message
        currentBuild.result = 'UNSTABLE'
    }
}

// ---------------------------------------------------------------------------
// Environment, info file, job properties, report
// ---------------------------------------------------------------------------

// Everything the helper is told, as KEY=value for withEnv. Registration and the
// branch are never forced from here: the helper decides them from Jenkins' own
// variables (BRANCH_NAME, CHANGE_ID, BRANCH_IS_PRIMARY) and MLTP_DEFAULT_BRANCH.
List helperEnv(Map ctx, Object scmVars) {
    Map cfg = ctx.cfg
    List result = [
        'MLTP=' + ctx.mltp,
        'MLTP_HELPER_SH=' + ctx.helperSh,
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
    if (cfg.allowNearest) {
        result.add('MLTP_ALLOW_NEAREST=1')
    }
    if (cfg.preflight == false) {
        result.add('MLTP_NO_PREFLIGHT=1')
    }
    // Pipeline's checkout returns GIT_COMMIT but does not export it.
    if (!env.GIT_COMMIT && scmVars instanceof Map && scmVars.GIT_COMMIT) {
        result.add('GIT_COMMIT=' + scmVars.GIT_COMMIT)
    }
    return result
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
        if (registers(info)) {
            props.add(pipelineTriggers([cron(schedule)]))
            echo(PREFIX + "retraining on the schedule '${schedule}'")
        } else {
            echo(PREFIX + 'the schedule applies to the default branch only; not scheduling this branch')
        }
    }
    properties(props)
}

// The default branch is the one that registers, and the helper decides which that
// is (the info file's `register` line, from BRANCH_IS_PRIMARY, MLTP_DEFAULT_BRANCH
// and CHANGE_ID); no verdict counts as no. A pull request never is, whatever it says.
boolean registers(Map info) {
    return !env.CHANGE_ID && info.register == 'true'
}

def publishReport(Map ctx) {
    // The model itself stays in S3 and the registry, not in Jenkins.
    mltpHelper.optionalStep(PREFIX, 'archive the report', 'warning: could not archive the report: no archiveArtifacts step') {
        archiveArtifacts(artifacts: REPORT_DIR + '/**', excludes: REPORT_DIR + '/**/*.tar.gz', allowEmptyArchive: true)
    }
    mltpHelper.optionalStep(PREFIX, 'publish the gate results', 'the JUnit plugin is not installed: gate rules are not published as tests') {
        junit(testResults: REPORT_DIR + '/junit.xml', allowEmptyResults: true)
    }
    boolean hasHtml = fileExists(ctx.workspace + '/' + REPORT_DIR + '/' + HTML_REPORT)
    if (hasHtml) {
        // report.html is archived with the rest; with the HTML Publisher plugin it also
        // gets its own link on the job and build pages.
        mltpHelper.optionalStep(PREFIX, 'publish report.html',
                                'the HTML Publisher plugin is not installed: report.html is linked from the build description only') {
            publishHTML(target: [reportDir: REPORT_DIR, reportFiles: HTML_REPORT, reportName: 'mltp report',
                                 keepAll: true, alwaysLinkToLastBuild: true, allowMissing: true])
        }
    }
    mltpHelper.optionalStep(PREFIX, 'set the build description', null) {
        String summary = ctx.workspace + '/' + REPORT_DIR + '/summary.txt'
        String line = fileExists(summary) ? mltpHelper.firstLine(readFile(summary)) : ''
        if (line) {
            // The summary comes from the run: escaped, so only the step's own link is HTML.
            currentBuild.description = mltpHelper.escapeHtml(line) + (hasHtml ? ' ' + reportLink() : '')
        }
    }
    pruneOnSchedule(ctx)
}

// The run's part of the outcome, read on the agent from the report folder; ctx.report
// keeps it (with the link) for the approval.
def readOutcome(Map ctx) {
    String dir = ctx.workspace + '/' + REPORT_DIR
    Map report = mltpHelper.readRunReport(dir)
    if (env.BUILD_URL && fileExists(dir + '/' + HTML_REPORT)) {
        report.reportUrl = env.BUILD_URL + 'artifact/' + REPORT_DIR + '/' + HTML_REPORT
    }
    List keys = ['summary', 'modelPackageArn', 'modelPackageGroup', 'version', 'approvalStatus', 'metrics', 'champion', 'reportUrl']
    for (int i = 0; i < keys.size(); i++) {
        ctx.outcome[keys[i]] = report[keys[i]]
    }
    ctx.outcome.runName = report.runName ?: ctx.outcome.runName
    ctx.report = report
}

// A link to the archived report.html (a link with the Safe HTML markup formatter).
String reportLink() {
    String base = env.BUILD_URL ?: ''
    return '<a href="' + mltpHelper.escapeHtml(base) + 'artifact/' + REPORT_DIR + '/' + HTML_REPORT + '">report.html</a>'
}

// On the default branch's scheduled builds, with pruneOlderThanDays set: `mltp prune --yes`.
// Housekeeping never fails the build: a problem is a warning line.
def pruneOnSchedule(Map ctx) {
    Map cfg = ctx.cfg
    if (cfg.pruneOlderThanDays == null || cfg.mode != 'aws' || !ctx.env) {
        return
    }
    if (!registers(mltpHelper.readKeyValues(ctx.infoFile)) || !timerTriggered()) {
        return
    }
    List pruneEnv = ctx.env + ['MLTP_OLDER_THAN=' + cfg.pruneOlderThanDays + 'd']
    mltpHelper.optionalStep(PREFIX, 'run mltp prune', null) {
        int rc = mltpHelper.runVerb('prune', pruneEnv, mltpHelper.awsCredentials(cfg))
        if (rc != 0) {
            echo(PREFIX + 'warning: mltp prune failed: ' + mltpHelper.readReason(PREFIX, ctx.errorFile, 'prune', rc))
        }
    }
}

// A Jenkins too old to say what started the build: no housekeeping.
boolean timerTriggered() {
    boolean timer = false
    mltpHelper.optionalStep(PREFIX, 'read the build causes', null) {
        timer = currentBuild.getBuildCauses(TIMER_CAUSE).size() > 0
    }
    return timer
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

String remainingMinutes(int timeoutMinutes, long started) {
    long elapsed = (System.currentTimeMillis() - started).intdiv(60000)
    long remaining = timeoutMinutes - elapsed - 1   // let the helper time out first, with a clean report
    return String.valueOf(remaining < 1 ? 1 : remaining)
}
