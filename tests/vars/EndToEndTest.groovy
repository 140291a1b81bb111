// End to end: the step with a real `sh`. It writes the bundled helper from
// resources/ to the agent, installs it into a cached virtualenv, and runs the
// example model with mode 'local' (the embedded emulator, scripts as local
// processes). Needs a package index (pip installs the pinned requirements). No scriptPython: as on a fresh agent with only python3, the helper
// runs the scripts in the local environment of the example's framework
// (scikit-learn and the rest of the SageMaker container's packages, the
// training toolkit), which it builds in its cache when it is not there. The
// agent's interpreter that installs the helper is MLTP_TEST_AGENT_PYTHON (make
// test picks a Python 3.12, what Ubuntu 24.04 agents have), else python3.
//
// The helper is installed from scratch every time. The local environment is
// built once per machine and kept across sessions, where the Python suite keeps
// its own (tests/conftest.py: ~/.cache/mltp-test-envs, MLTP_TEST_ENVS moves it):
// scikit-learn's takes minutes to build, and building one in an empty cache is
// what tests/helper/test_envs.py proves on every run (a framework row as small
// as the toolkit allows). The first build here says it built the environment
// (a cold machine) or names the kept one its jobs ran with; the second build
// must not build it again either way.

File sharedEnvironments() {
    File envs = new File(System.getenv('MLTP_TEST_ENVS') ?: System.getProperty('user.home') + '/.cache/mltp-test-envs')
    envs.mkdirs()
    envs
}

/** h's cache with its envs/ folder linked to the kept environments (the harness deletes only the link). */
void linkEnvironments(PipelineHarness h) {
    File cache = new File(h.env.MLTP_CACHE_DIR)
    cache.mkdirs()
    java.nio.file.Files.createSymbolicLink(new File(cache, 'envs').toPath(), sharedEnvironments().toPath())
}

void copyTree(File from, File to) {
    from.eachFileRecurse { File f ->
        File target = new File(to, from.toPath().relativize(f.toPath()).toString())
        if (f.isDirectory()) {
            target.mkdirs()
        } else if (!f.path.contains('/.mltp/') && !f.path.contains('__pycache__')) {
            target.parentFile.mkdirs()
            target.bytes = f.bytes
        }
    }
}

test('end to end: bundled helper, cached venv, example model run locally') { PipelineHarness h ->
    h.resources.clear()                      // the real bundle: resources/mltp/
    h.realSh = true
    copyTree(new File(ROOT, 'examples/fraud-detection'), h.workspace)   // what checkout scm brings
    h.branch('main', true)
    String agentPython = System.getenv('MLTP_TEST_AGENT_PYTHON') ?: 'python3'
    println "      (agent Python: ${agentPython})"
    h.env.PIP_CACHE_DIR = System.getenv('PIP_CACHE_DIR') ?: (System.getProperty('user.home') + '/.cache/pip')
    linkEnvironments(h)

    h.run(mode: 'local', python: agentPython)   // runs the example's scripts (scikit-learn), no scriptPython

    assert h.result == 'SUCCESS', h.log.takeRight(40).join('\n')
    assert h.helperVerbs() == ['validate', 'run']
    assert !h.shFor('run').env.containsKey('MLTP_PYTHON')
    // The jobs ran in the scikit-learn environment of the helper's cache: built now (a cold machine) or kept.
    String envs = h.env.MLTP_CACHE_DIR + '/envs/sklearn-1.2-1-py'
    assert h.log.any { it.startsWith('local: AWS emulator at ') && it.contains('; jobs run as local processes with ' + envs) },
        h.log.findAll { it.startsWith('local: ') }.join('\n')
    boolean built = h.log.any { it.startsWith('local: building the environment for sklearn 1.2-1 in ' + envs) }
    println "      (local environment: ${built ? 'built' : 'kept from an earlier session'})"
    assert h.stageNames() == ['Validate', 'Train', 'Report']
    assert h.log.any { it.contains('mltp helper: installed in') }
    assert h.installCall().env.MLTP_INSTALL_REQUIREMENTS.endsWith('/requirements-local.txt')
    assert h.log.any { it =~ /^fraud-detection run jenkins-ml-pipeline-main-7: PASSED/ }
    assert h.log.any { it =~ /^auc\s+0\.9\d+\s+>= 0\.9\s+pass/ }
    assert h.currentBuild.description.startsWith('fraud-detection run jenkins-ml-pipeline-main-7: PASSED')
    File report = new File(h.workspace, '.mltp/report')
    ['report.json', 'report.md', 'junit.xml', 'summary.txt', 'evaluation.json', 'model.tar.gz'].each {
        assert new File(report, it).isFile(), "report folder lacks ${it}"
    }
    assert h.callsOf('archiveArtifacts').size() == 1
    assert h.callsOf('junit').size() == 1
    assert new File(report, 'report.json').text.contains('"status": "passed"')

    // A second build on the same agent installs nothing: the venv is cached by
    // content hash, and verified before it is used.
    PipelineHarness again = newHarness()
    again.resources.clear()
    again.realSh = true
    again.env.MLTP_CACHE_DIR = h.env.MLTP_CACHE_DIR
    again.env.PIP_CACHE_DIR = h.env.PIP_CACHE_DIR
    copyTree(new File(ROOT, 'examples/fraud-detection'), again.workspace)
    again.branch('main', true)
    again.run(mode: 'local', python: agentPython)
    assert again.result == 'SUCCESS', again.log.takeRight(20).join('\n')
    assert !again.log.any { it.startsWith('local: building the environment') }   // the local environment too
    assert again.log.any { it.startsWith('mltp helper: cached in') && it.endsWith('(verified)') }
    assert !again.log.any { it.contains('installing into') }
    assert again.shFor('run').env.MLTP == h.shFor('run').env.MLTP

    // What the step returned, from the real report folder (outcome.txt needs a bundle
    // built with it: `make bundle` after a change of the helper's report writer).
    Map outcome = h.returned
    assert outcome.result == 'passed' && outcome.message == null
    assert outcome.runName == 'jenkins-ml-pipeline-main-7'
    assert outcome.summary.startsWith('fraud-detection run jenkins-ml-pipeline-main-7: PASSED')
    assert outcome.reportUrl == h.env.BUILD_URL + 'artifact/.mltp/report/report.html'
    assert outcome.metrics.auc instanceof BigDecimal && outcome.metrics.auc >= 0.9
}
