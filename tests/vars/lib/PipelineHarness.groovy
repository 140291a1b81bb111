import hudson.AbortException
import org.jenkinsci.plugins.workflow.steps.FlowInterruptedException

import java.util.regex.Pattern

/**
 * A small stand-in for Jenkins Pipeline, in the spirit of JenkinsPipelineUnit.
 *
 * It loads a vars/ script with GroovyShell, binds every pipeline step it knows as a
 * closure in the script's Binding, and records each step call with its arguments, the
 * environment in force (base env + withEnv + withCredentials layers), the credentials
 * bound and the stage. Steps it does not know are not bound, so a script calling one
 * fails the test with a MissingMethodException.
 *
 * `sh` is scripted with onSh(matcher) { ctx -> rc | [rc:, stdout:] } rules; with
 * realSh = true, an sh call no rule matches runs for real (/bin/sh, the recorded
 * environment, the current directory). File steps work on a real temporary
 * workspace, so scripted helpers and real scripts can both leave files behind.
 */
class PipelineHarness {
    // The runner's scripts are constant; what they do is in their environment.
    static final Closure HELPER_CALL = { String script, Map env -> env.MLTP_VERB != null && script.contains('MLTP_HELPER_SH') }
    static final Closure INSTALL_CALL = { String script, Map env -> script.contains('MLTP_INSTALL_SH') }
    static final String FAKE_WHEEL = 'mltp-0.1.0-py3-none-any.whl'

    final File root                 // the library checkout: vars/, resources/
    final File sandbox              // everything this harness writes lives here
    final File workspace
    final File workspaceTmp

    Map<String, String> env = [:]               // the build's environment
    Map<String, Object> resources = [:]         // libraryResource overrides: path -> String | byte[]
    Map<String, List<String>> awsCredentials = [:]  // credentialsId -> [accessKey, secretKey]
    Set<String> missingSteps = [] as Set        // steps that throw NoSuchMethodError, like an absent plugin
    Set<String> unboundSteps = [] as Set        // steps left out of the Binding (MissingMethodException)
    boolean unix = true
    boolean realSh = false
    Map<String, String> scmVars = [GIT_COMMIT: '0123456789abcdef0123456789abcdef01234567', GIT_BRANCH: 'origin/main']

    final List<Map> calls = []
    final List<String> log = []
    final CurrentBuild currentBuild = new CurrentBuild()
    List jobProperties = null
    Closure inputHandler = null                 // answers `input` (gets its options; may throw); null: input fails the test
    String result
    Throwable thrown
    Object returned                             // what the step returned (null when it threw)

    private final List<Map> shRules = []
    private final List<Map> envLayers = []      // [kind: 'withEnv'|'credentials', vars: Map, id: credentialsId]
    private final List<File> dirs = []
    private final List<String> stages = []

    PipelineHarness(File root) {
        this.root = root
        sandbox = File.createTempDir('mltp-vars-test', '')
        workspace = new File(sandbox, 'workspace/ml-pipeline_main')
        workspaceTmp = new File(workspace.path + '@tmp')
        workspace.mkdirs()
        env.putAll([
            JOB_NAME  : 'ml-pipeline/main',
            BUILD_NUMBER: '7',
            BUILD_TAG : 'jenkins-ml-pipeline-main-7',
            BUILD_URL : 'https://jenkins.example.com/job/ml-pipeline/job/main/7/',
            JENKINS_URL: 'https://jenkins.example.com/',
            WORKSPACE : workspace.path,
            HOME      : new File(sandbox, 'home').path,
            MLTP_CACHE_DIR: new File(sandbox, 'cache').path,
        ])
        useFakeBundle()
    }

    // ------------------------------------------------------------------ setup

    /** A branch of a multibranch job. primary: Jenkins sets BRANCH_IS_PRIMARY=true on the default branch. */
    PipelineHarness branch(String name, boolean primary = false) {
        env.BRANCH_NAME = name
        if (primary) {
            env.BRANCH_IS_PRIMARY = 'true'
        } else {
            env.remove('BRANCH_IS_PRIMARY')
        }
        this
    }

    PipelineHarness pullRequest(String id, String target = 'main') {
        env.BRANCH_NAME = 'PR-' + id
        env.CHANGE_ID = id
        env.CHANGE_TARGET = target
        env.remove('BRANCH_IS_PRIMARY')
        this
    }

    /** A bundled helper that is not a real wheel: enough for scripted tests. */
    void useFakeBundle() {
        resources['mltp/bundle.txt'] = FAKE_WHEEL + '\n'
        resources['mltp/' + FAKE_WHEEL] = 'PK not a real wheel'.getBytes('UTF-8')
        resources['mltp/requirements-aws.txt'] = 'pyyaml==6.0.2 --hash=sha256:' + ('0' * 64) + '\n'
        resources['mltp/requirements-local.txt'] = 'moto==5.2.5 --hash=sha256:' + ('1' * 64) + '\n'
    }

    /** Script sh: matcher is a String (contained), a Pattern (found) or a Closure(script, env). */
    void onSh(Object matcher, Closure handler) {
        shRules.add([matcher: matcher, handler: handler])
    }

    /**
     * Scripted `mltp` helper and installer. opts:
     *   rc:     [verb: exit code]      (default 0)
     *   errors: [verb: reason line]    written to $MLTP_ERROR_FILE on a non-zero exit
     *   info:   [key: value]           written to $MLTP_INFO_FILE by validate
     *   report: true                   wait/run write summary.txt, junit.xml, report.md
     *   summary: 'text'                summary.txt line
     *   outcomeLines: 'text'           outcome.txt (default: status, run, champion, metric.auc, champion.auc)
     *   approvalFiles: true            wait also writes gate.txt, and registration.txt when it passes on a
     *                                  registering branch, as `mltp wait` does (off by default: other tests
     *                                  count the archived files)
     *   approvalStatus: 'X'            status in registration.txt (default PendingManualApproval)
     *   actions: [verb: Closure(ctx)]  run before exiting (may throw, e.g. an interruption)
     *   installRc / installError       for the install script
     */
    void fakeHelper(Map opts = [:]) {
        Map rcs = opts.rc ?: [:]
        Map errors = opts.errors ?: [:]
        Map info = opts.containsKey('info') ? opts.info : [name: 'fraud-detection', schedule: 'H 3 * * 1']
        Map actions = opts.actions ?: [:]
        String summary = opts.summary ?: 'fraud-detection: gate passed (auc 0.941 >= 0.90), registered version 3'
        onSh(INSTALL_CALL) { Map ctx ->
            int rc = opts.installRc ?: 0
            if (rc != 0) {
                if (opts.installError) {
                    write(ctx.env.MLTP_ERROR_FILE, opts.installError + '\n')
                }
                return rc
            }
            write(ctx.env.MLTP_INSTALL_OUT, new File(sandbox, 'cache/venv-0123/bin/mltp').path + '\n')
            return 0
        }
        onSh(HELPER_CALL) { Map ctx ->
            String verb = ctx.env.MLTP_VERB
            int rc = rcs.containsKey(verb) ? rcs[verb] : 0
            if (actions[verb]) {
                actions[verb].call(ctx)
            }
            if (verb == 'validate' && rc == 0 && info != null) {
                Map written = new LinkedHashMap(info)
                if (!opts.containsKey('info')) {
                    boolean registers = helperRegisters(ctx.env)
                    written.state_machine = registers ? 'fraud-detection' : 'fraud-detection--branch'
                    written.register = String.valueOf(registers)
                }
                write(ctx.env.MLTP_INFO_FILE, written.collect { k, v -> "${k}=${v}" }.join('\n') + '\n')
            }
            if ((verb == 'wait' || verb == 'run') && opts.report != false && rc in [0, 3, 4]) {
                String dir = ctx.env.MLTP_REPORT_DIR
                write(dir + '/summary.txt', summary + '\n')
                write(dir + '/report.md', '# report\n')
                write(dir + '/model.tar.gz', 'model bytes')
                write(dir + '/outcome.txt', opts.outcomeLines != null ? opts.outcomeLines :
                      "status=${rc == 0 ? 'passed' : (rc == 3 ? 'gate_failed' : 'failed')}\nrun=${ctx.env.BUILD_TAG}\n" +
                      "champion=fraud-detection/2\nmetric.auc=${rc == 3 ? '0.812' : '0.941'}\nmetric.false_positive_rate=\n" +
                      'champion.auc=0.93\n')
                write(dir + '/junit.xml', rc == 3 ? '<testsuite><testcase name="auc"><failure/></testcase></testsuite>'
                                                  : '<testsuite><testcase name="auc"/></testsuite>')
            }
            if ((verb == 'wait' || verb == 'run') && opts.approvalFiles && rc in [0, 3, 4]) {
                String dir = ctx.env.MLTP_REPORT_DIR
                write(dir + '/gate.txt', 'metric  value  rule    result\nauc     0.941  >= 0.9  pass\n' +
                                         'champion fraud-detection/2 vs this run\nauc  0.93  0.941  +0.011  better\n')
                if (rc == 0 && helperRegisters(ctx.env)) {
                    write(dir + '/registration.txt',
                          'model_package_arn=arn:aws:sagemaker:eu-west-1:123456789012:model-package/fraud-detection/3\n' +
                          'group=fraud-detection\nversion=3\napproval_status=' + (opts.approvalStatus ?: 'PendingManualApproval') + '\n')
                }
            }
            if (rc != 0 && errors[verb]) {
                write(ctx.env.MLTP_ERROR_FILE, errors[verb] + '\n')
            }
            return rc
        }
    }

    /** The helper's rule for "this build registers" (helper/src/mltp/context.py), mirrored. */
    static boolean helperRegisters(Map env) {
        if (env.CHANGE_ID) {
            return false
        }
        String branch = env.BRANCH_NAME ?: ''
        if (env.MLTP_DEFAULT_BRANCH) {
            return branch == env.MLTP_DEFAULT_BRANCH || !branch
        }
        if (env.BRANCH_IS_PRIMARY?.toLowerCase() == 'true' || !branch) {
            return true
        }
        return env.containsKey('BRANCH_IS_PRIMARY') ? false : branch in ['main', 'master']
    }

    // ------------------------------------------------------------------ running

    /** Loads vars/<name>.groovy into a fresh Binding holding the steps. */
    Script loadVar(String name = 'mlTrainingPipeline') {
        Binding binding = new Binding()
        for (String step : STEPS) {
            if (!unboundSteps.contains(step)) {
                final String stepName = step
                binding.setVariable(stepName, { Object[] args -> invokeStep(stepName, args) })
            }
        }
        binding.setVariable('env', new EnvProxy(this))
        binding.setVariable('currentBuild', currentBuild)
        binding.setVariable('scm', [$class: 'GitSCM', userRemoteConfigs: [[url: 'https://git.example.com/ml/model.git']]])
        binding.setVariable('params', [:])
        GroovyShell shell = new GroovyShell(PipelineHarness.classLoader, binding)
        // Every other global variable of the library, as Jenkins binds them (the shared runner mltpHelper).
        new File(root, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.each { File f ->
            String other = f.name - '.groovy'
            if (other != name) {
                binding.setVariable(other, shell.parse(f))
            }
        }
        return shell.parse(new File(root, "vars/${name}.groovy"))
    }

    /** Runs the step like one build; sets result and thrown, as Jenkins would. */
    PipelineHarness run(Map config = [:], String var = 'mlTrainingPipeline') {
        Script script = loadVar(var)
        try {
            returned = script.invokeMethod('call', config == null ? [null] as Object[] : [config] as Object[])
            result = currentBuild.result ?: 'SUCCESS'
        } catch (FlowInterruptedException e) {
            thrown = e
            result = e.result
        } catch (InterruptedException e) {
            thrown = e
            result = 'ABORTED'
        } catch (Throwable e) {
            thrown = e
            result = 'FAILURE'
        }
        currentBuild.result = result
        log.add('Finished: ' + result)
        this
    }

    /** Deletes the sandbox, as File.deleteDir did, without following symbolic links: a test may link a
     *  folder of its cache to one the suite keeps across sessions (EndToEndTest's local environments),
     *  which deleteDir would empty. What cannot be deleted is left, as before. */
    void cleanup() {
        if (!sandbox.exists()) {
            return
        }
        java.nio.file.Files.walkFileTree(sandbox.toPath(), new java.nio.file.SimpleFileVisitor<java.nio.file.Path>() {
            @Override
            java.nio.file.FileVisitResult visitFile(java.nio.file.Path file, java.nio.file.attribute.BasicFileAttributes attrs) {
                quietlyDelete(file)   // a symbolic link, also one to a folder, is a file here: only the link goes
                java.nio.file.FileVisitResult.CONTINUE
            }

            @Override
            java.nio.file.FileVisitResult visitFileFailed(java.nio.file.Path file, IOException exc) {
                quietlyDelete(file)
                java.nio.file.FileVisitResult.CONTINUE
            }

            @Override
            java.nio.file.FileVisitResult postVisitDirectory(java.nio.file.Path dir, IOException exc) {
                quietlyDelete(dir)
                java.nio.file.FileVisitResult.CONTINUE
            }
        })
    }

    static void quietlyDelete(java.nio.file.Path path) {
        try {
            java.nio.file.Files.deleteIfExists(path)
        } catch (IOException ignored) {
            // left behind in the temporary folder, as File.deleteDir leaves what it cannot delete
        }
    }

    // ------------------------------------------------------------------ queries

    List<Map> callsOf(String step) { calls.findAll { it.step == step } }

    List<String> stepNames() { calls.collect { it.step } }

    List<Map> shCalls() { callsOf('sh') }

    List<String> shScripts() { shCalls().collect { it.script } }

    /** The mltp verbs run, in order, from the sh calls. */
    List<String> helperVerbs() {
        shCalls().findAll { HELPER_CALL.call(it.script, it.env) }.collect { it.env.MLTP_VERB }
    }

    Map shFor(String verb) { shCalls().find { HELPER_CALL.call(it.script, it.env) && it.env.MLTP_VERB == verb } }

    /** The install script's sh call, or null. */
    Map installCall() { shCalls().find { INSTALL_CALL.call(it.script, it.env) } }

    List<String> stageNames() { callsOf('stage').collect { it.args[0] } }

    /** Messages of the error steps called. */
    List<String> errors() { callsOf('error').collect { String.valueOf(it.args[0]) } }

    String logText() { log.join('\n') }

    /** Every piece of text the build produced or ran: for "this must appear nowhere" checks. */
    List<String> allText() {
        List<String> out = []
        out.addAll(log)
        out.addAll(shScripts())
        calls.each { Map c ->
            out.addAll(c.withEnv ?: [])
            c.args.each { a -> if (a instanceof CharSequence) { out.add(a.toString()) } }
        }
        if (currentBuild.description) {
            out.add(currentBuild.description)
        }
        if (thrown?.message) {
            out.add(thrown.message)
        }
        out
    }

    /** The triggers set through properties(pipelineTriggers([...])). */
    List triggers() {
        (jobProperties ?: []).findAll { it.type == 'pipelineTriggers' }.collectMany { it.triggers }
    }

    File file(String path) { path.startsWith('/') ? new File(path) : new File(workspace, path) }

    static void write(String path, String text) {
        File f = new File(path)
        f.parentFile.mkdirs()
        f.setText(text, 'UTF-8')
    }

    // ------------------------------------------------------------------ steps

    static final List<String> STEPS = [
        'archiveArtifacts', 'buildDiscarder', 'catchError', 'checkout', 'choice', 'cron', 'deleteDir', 'dir',
        'disableConcurrentBuilds', 'echo', 'error', 'fileExists', 'input', 'isUnix', 'junit', 'libraryResource',
        'logRotator', 'mail', 'node', 'pipelineTriggers', 'properties', 'publishHTML', 'pwd', 'readFile', 'sh', 'stage',
        'text', 'timeout', 'unstable', 'withCredentials', 'withEnv', 'writeFile',
    ]

    Object invokeStep(String step, Object[] rawArgs) {
        List args = rawArgs == null ? [] : rawArgs.toList()
        Closure body = (args && args[-1] instanceof Closure) ? (Closure) args.remove(args.size() - 1) : null
        Map call = [step: step, args: args, stage: stages ? stages[-1] : null,
                    env: effectiveEnv(), withEnv: withEnvEntries(), credentials: credentialIds(),
                    cwd: dirs ? dirs[-1].path : null]
        calls.add(call)
        if (missingSteps.contains(step)) {
            throw new NoSuchMethodError("No such DSL method '${step}' found among steps")
        }
        Map named = (args && args[0] instanceof Map) ? (Map) args[0] : [:]
        switch (step) {
            case 'echo':
                log.add(String.valueOf(args[0]))
                return null
            case 'error':
                log.add('ERROR: ' + args[0])
                throw new AbortException(String.valueOf(args[0]))
            case 'unstable':
                String message = named ? named.message : args[0]
                log.add('WARNING: ' + message)
                currentBuild.result = 'UNSTABLE'
                return null
            case 'mail':             // Mailer plugin: recorded only
                log.add('mail to ' + named.to + ': ' + named.subject)
                return null
            case 'isUnix':
                return unix
            case 'stage':
                log.add("[Pipeline] { (${args[0]})")
                stages.add(String.valueOf(args[0]))
                try {
                    return body.call()
                } finally {
                    stages.remove(stages.size() - 1)
                }
            case 'timeout':
                return body.call()
            case 'input':
                log.add('Input requested: ' + named.message)
                if (inputHandler == null) {
                    throw new IllegalStateException('the build asked for input, but the test gave no inputHandler')
                }
                return inputHandler.call(named)
            case 'choice':
                return [type: 'choice'] + named
            case 'text':
                return [type: 'text'] + named
            case 'node':
                log.add('Running on agent' + (args ? " with label '${args[0]}'" : '') + ' in ' + workspace)
                dirs.add(workspace)
                try {
                    return body.call()
                } finally {
                    dirs.remove(dirs.size() - 1)
                }
            case 'dir':
                dirs.add(resolve(String.valueOf(args[0])))
                try {
                    return body.call()
                } finally {
                    dirs.remove(dirs.size() - 1)
                }
            case 'withEnv':
                Map vars = [:]
                for (Object entry : (List) args[0]) {
                    String s = String.valueOf(entry)
                    int eq = s.indexOf('=')
                    vars[s.substring(0, eq)] = s.substring(eq + 1)
                }
                return withLayer([kind: 'withEnv', vars: vars, entries: ((List) args[0]).collect { String.valueOf(it) }], body)
            case 'withCredentials':
                return withCredentialsStep((List) args[0], body)
            case 'checkout':
                needAgent(step)
                return new LinkedHashMap(scmVars)
            case 'pwd':
                needAgent(step)
                return named.tmp ? workspaceTmp.path : dirs[-1].path
            case 'deleteDir':
                needAgent(step)
                dirs[-1].deleteDir()
                return null
            case 'writeFile':
                needAgent(step)
                File target = resolve(String.valueOf(named.file))
                target.parentFile.mkdirs()
                if (named.encoding == 'Base64') {
                    target.bytes = Base64.decoder.decode(String.valueOf(named.text))
                } else {
                    target.setText(String.valueOf(named.text), 'UTF-8')
                }
                return null
            case 'readFile':
                needAgent(step)
                File source = resolve(String.valueOf(named ? named.file : args[0]))
                if (!source.isFile()) {
                    throw new NoSuchFileException(source.path)
                }
                return source.getText('UTF-8')
            case 'fileExists':
                needAgent(step)
                return resolve(String.valueOf(named ? named.file : args[0])).exists()
            case 'libraryResource':
                return libraryResource(named ? String.valueOf(named.resource) : String.valueOf(args[0]),
                                       named ? named.encoding : null)
            case 'sh':
                needAgent(step)
                return shStep(named ?: [script: String.valueOf(args[0])], call)
            case 'archiveArtifacts':
                needAgent(step)
                return archive(named ?: [artifacts: args[0]], call)
            case 'junit':
                needAgent(step)
                return junitStep(named ?: [testResults: args[0]])
            case 'publishHTML':      // HTML Publisher plugin: recorded only
                needAgent(step)
                return null
            case 'properties':
                jobProperties = (List) args[0]
                return null
            case 'pipelineTriggers':
                return [type: 'pipelineTriggers', triggers: args[0]]
            case 'cron':
                return [type: 'cron', spec: args[0]]
            case 'disableConcurrentBuilds':
                return [type: 'disableConcurrentBuilds'] + named
            case 'buildDiscarder':
                return [type: 'buildDiscarder', strategy: args[0]]
            case 'logRotator':
                return [type: 'logRotator'] + named
            case 'catchError':
                try {
                    return body.call()
                } catch (InterruptedException e) {
                    throw e
                } catch (Exception e) {
                    currentBuild.result = named.buildResult ?: 'FAILURE'
                    return null
                }
            default:
                throw new IllegalStateException('harness has no implementation of ' + step)
        }
    }

    private static class NoSuchFileException extends AbortException {
        NoSuchFileException(String path) { super(path + ' does not exist.') }
    }

    private void needAgent(String step) {
        if (!dirs) {
            throw new IllegalStateException("${step} needs an agent: call it inside node { }")
        }
    }

    private File resolve(String path) {
        path.startsWith('/') ? new File(path) : new File(dirs ? dirs[-1] : workspace, path)
    }

    private Object withLayer(Map layer, Closure body) {
        envLayers.add(layer)
        try {
            return body.call()
        } finally {
            envLayers.remove(envLayers.size() - 1)
        }
    }

    private Object withCredentialsStep(List bindings, Closure body) {
        Map vars = [:]
        List ids = []
        for (Map b : bindings) {
            if (b['$class'] != 'AmazonWebServicesCredentialsBinding') {
                throw new IllegalStateException('harness knows only AmazonWebServicesCredentialsBinding, not ' + b)
            }
            List<String> secret = awsCredentials[b.credentialsId]
            if (secret == null) {
                throw new AbortException("Could not find credentials entry with ID '${b.credentialsId}'")
            }
            vars[b.accessKeyVariable ?: 'AWS_ACCESS_KEY_ID'] = secret[0]
            vars[b.secretKeyVariable ?: 'AWS_SECRET_ACCESS_KEY'] = secret[1]
            ids.add(b.credentialsId)
        }
        withLayer([kind: 'credentials', vars: vars, ids: ids], body)
    }

    Map<String, String> effectiveEnv() {
        Map<String, String> out = new LinkedHashMap(env)
        for (Map layer : envLayers) {
            out.putAll(layer.vars)
        }
        out
    }

    private List<String> withEnvEntries() {
        envLayers.findAll { it.kind == 'withEnv' }.collectMany { it.entries }
    }

    private List<String> credentialIds() {
        envLayers.findAll { it.kind == 'credentials' }.collectMany { it.ids }
    }

    private Object libraryResource(String path, Object encoding) {
        Object content = resources[path]
        if (resources.containsKey(path) && content == null) {
            throw new AbortException("No such library resource ${path} could be found.")
        }
        if (content == null) {
            File f = new File(root, 'resources/' + path)
            if (!f.isFile()) {
                throw new AbortException("No such library resource ${path} could be found.")
            }
            content = f.bytes
        }
        byte[] bytes = content instanceof byte[] ? (byte[]) content : String.valueOf(content).getBytes('UTF-8')
        encoding == 'Base64' ? Base64.encoder.encodeToString(bytes) : new String(bytes, 'UTF-8')
    }

    private Object shStep(Map a, Map call) {
        String script = String.valueOf(a.script)
        call.script = script
        Map<String, String> shEnv = effectiveEnv()
        Map rule = shRules.find { Map r -> matches(r.matcher, script, shEnv) }
        int rc
        String stdout = ''
        if (rule != null) {
            Object out = rule.handler.call([script: script, env: shEnv, harness: this, cwd: dirs[-1]])
            if (out instanceof Map) {
                rc = (out.rc ?: 0) as int
                stdout = out.stdout ?: ''
            } else {
                rc = (out ?: 0) as int
            }
        } else if (realSh) {
            List<String> cmd = script.startsWith('#!') ? ['/bin/sh', '-c', script] : ['/bin/sh', '-xe', '-c', script]
            ProcessBuilder pb = new ProcessBuilder(cmd).directory(dirs[-1])
            pb.environment().clear()
            pb.environment().put('PATH', System.getenv('PATH'))
            shEnv.each { k, v -> if (v != null) { pb.environment().put(k, v) } }
            pb.redirectErrorStream(!a.returnStdout)
            Process p = pb.start()
            p.outputStream.close()
            StringBuilder err = new StringBuilder()
            Thread errReader = Thread.start { if (a.returnStdout) { err.append(p.errorStream.getText('UTF-8')) } }
            stdout = p.inputStream.getText('UTF-8')
            rc = p.waitFor()
            errReader.join()
            if (err) {
                log.addAll(err.toString().readLines())
            }
        } else {
            rc = 0
        }
        call.rc = rc
        if (!a.returnStdout && stdout) {
            log.addAll(stdout.readLines())
        }
        if (a.returnStatus) {
            return rc
        }
        if (rc != 0) {
            throw new AbortException("script returned exit code ${rc}")
        }
        return a.returnStdout ? stdout : null
    }

    private static boolean matches(Object matcher, String script, Map env) {
        if (matcher instanceof Pattern) {
            return ((Pattern) matcher).matcher(script).find()
        }
        if (matcher instanceof Closure) {
            return ((Closure) matcher).call(script, env) as boolean
        }
        return script.contains(String.valueOf(matcher))
    }

    /** Supports the 'dir/**' and plain file patterns the steps use. */
    private Object archive(Map a, Map call) {
        List<String> found = []
        for (String pattern : String.valueOf(a.artifacts).split(',')) {
            pattern = pattern.trim()
            if (pattern.endsWith('/**')) {
                File d = resolve(pattern[0..-4])
                if (d.isDirectory()) {
                    d.eachFileRecurse(groovy.io.FileType.FILES) { File f -> found.add(workspace.toPath().relativize(f.toPath()).toString()) }
                }
            } else if (resolve(pattern).isFile()) {
                found.add(pattern)
            }
        }
        if (a.excludes) {
            // supports the 'dir/**/*.ext' form
            String excluded = String.valueOf(a.excludes)
            String prefix = excluded.substring(0, excluded.indexOf('/**/') + 1)
            String suffix = excluded.substring(excluded.lastIndexOf('*') + 1)
            found = found.findAll { !(it.startsWith(prefix) && it.endsWith(suffix)) }
        }
        call.archived = found.sort()
        if (!found && !a.allowEmptyArchive) {
            throw new AbortException("No artifacts found that match the file pattern \"${a.artifacts}\"")
        }
        null
    }

    private Object junitStep(Map a) {
        File f = resolve(String.valueOf(a.testResults))
        if (!f.isFile()) {
            if (!a.allowEmptyResults) {
                throw new AbortException('No test report files were found.')
            }
            return null
        }
        if (f.text.contains('<failure')) {
            currentBuild.result = 'UNSTABLE'
        }
        null
    }
}

/** currentBuild: the result only ever gets worse, as in Jenkins. */
class CurrentBuild {
    static final List<String> ORDER = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'NOT_BUILT', 'ABORTED']
    String result
    String description
    List<Map> buildCauses = []      // [_class: 'hudson.triggers.TimerTrigger$TimerTriggerCause', ...]

    List getBuildCauses(String className) { buildCauses.findAll { it._class == className } }

    void setResult(String r) {
        if (result == null || ORDER.indexOf(r) > ORDER.indexOf(result)) {
            result = r
        }
    }

    String getCurrentResult() { result ?: 'SUCCESS' }
}

/** env: reads see withEnv and credentials layers, like Jenkins' EnvActionImpl. */
class EnvProxy extends GroovyObjectSupport {
    private final PipelineHarness harness

    EnvProxy(PipelineHarness harness) { this.harness = harness }

    Object getProperty(String name) { harness.effectiveEnv()[name] }

    void setProperty(String name, Object value) { harness.env[name] = value == null ? null : String.valueOf(value) }
}
