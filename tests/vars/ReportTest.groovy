// Unit tests of the Report stage's report.html (archive, HTML Publisher, build
// description link) and of the pruneOlderThanDays housekeeping on scheduled builds.
// Run by tests/vars/run.sh.

import groovy.transform.Field

@Field final String TIMER = 'hudson.triggers.TimerTrigger$TimerTriggerCause'
@Field final String SUMMARY_HTML = 'fraud-detection: gate passed (auc 0.941 &gt;= 0.90), registered version 3'
@Field final String LINK = '<a href="https://jenkins.example.com/job/ml-pipeline/job/main/7/artifact/.mltp/report/report.html">report.html</a>'

// The helper of this branch writes report.html beside the other report files.
void helperWithHtml(PipelineHarness h, Map opts = [:]) {
    Map actions = [wait: { Map ctx -> PipelineHarness.write(ctx.env.MLTP_REPORT_DIR + '/report.html', '<!DOCTYPE html>\n') }]
    h.fakeHelper(opts + [actions: actions])
}

test('report.html: archived, published with HTML Publisher, linked from the build description') { PipelineHarness h ->
    h.branch('main', true)
    helperWithHtml(h)
    h.run()
    assert h.result == 'SUCCESS'
    assert h.callsOf('archiveArtifacts')[0].archived.contains('.mltp/report/report.html')
    Map publish = h.callsOf('publishHTML')[0]
    assert publish.args[0] == [target: [reportDir: '.mltp/report', reportFiles: 'report.html', reportName: 'mltp report',
                                        keepAll: true, alwaysLinkToLastBuild: true, allowMissing: true]]
    assert publish.stage == 'Report'
    assert h.currentBuild.description == SUMMARY_HTML + ' ' + LINK
    List steps = h.stepNames()
    assert steps.indexOf('archiveArtifacts') < steps.indexOf('publishHTML')
}

test('report.html: a missing HTML Publisher plugin does not break the build') { PipelineHarness h ->
    h.missingSteps << 'publishHTML'
    helperWithHtml(h)
    h.run()
    assert h.result == 'SUCCESS'
    assert h.logText().contains('the HTML Publisher plugin is not installed: report.html is linked from the build description only')
    assert h.currentBuild.description == SUMMARY_HTML + ' ' + LINK

    PipelineHarness unbound = newHarness()
    unbound.unboundSteps << 'publishHTML'
    helperWithHtml(unbound)
    unbound.run()
    assert unbound.result == 'SUCCESS'
    assert unbound.logText().contains('the HTML Publisher plugin is not installed')
}

test('report.html: a helper that wrote none gets neither publishHTML nor a link') { PipelineHarness h ->
    h.fakeHelper()
    h.run()
    assert h.result == 'SUCCESS'
    assert h.callsOf('publishHTML').isEmpty()
    assert h.currentBuild.description == SUMMARY_HTML
}

test('report.html: also after a failed gate') { PipelineHarness h ->
    helperWithHtml(h, [rc: [wait: 3], errors: [wait: 'metric gate failed: auc = 0.81, needs >= 0.9']])
    h.run()
    assert h.result == 'FAILURE'
    assert h.callsOf('publishHTML').size() == 1
    assert h.currentBuild.description.endsWith(LINK)
}

// ------------------------------------------------------------------ prune on schedule

test('prune: on the default branch scheduled build, mltp prune --yes with the age, inside the credentials') { PipelineHarness h ->
    h.branch('main', true)
    h.awsCredentials['aws-ml'] = ['AKIAIOSFODNN7EXAMPLE', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY']
    h.currentBuild.buildCauses << [_class: TIMER]
    helperWithHtml(h)
    h.run(pruneOlderThanDays: 45, credentialsId: 'aws-ml')
    assert h.result == 'SUCCESS'
    assert h.helperVerbs() == ['validate', 'publish', 'start', 'wait', 'prune']
    Map prune = h.shFor('prune')
    assert prune.script == h.loadVar('mltpHelper').@HELPER_SH
    assert prune.env.MLTP_VERB == 'prune'
    assert new File(ROOT, 'resources/mltp/helper.sh').text.contains('prune) exec "$MLTP" prune --yes "$MLTP_REPO" ;;')
    assert prune.env.MLTP_OLDER_THAN == '45d'
    assert prune.credentials == ['aws-ml']
    assert prune.stage == 'Report'
}

test('prune: never on a build a person started, on a branch, without the option, or in local mode') { PipelineHarness h ->
    h.branch('main', true)
    helperWithHtml(h)
    h.run(pruneOlderThanDays: 30)
    assert !('prune' in h.helperVerbs())   // started by hand: no timer cause

    PipelineHarness branch = newHarness()
    branch.branch('feature-x')
    branch.currentBuild.buildCauses << [_class: TIMER]
    helperWithHtml(branch)
    branch.run(pruneOlderThanDays: 30)
    assert branch.result == 'SUCCESS' && !('prune' in branch.helperVerbs())

    PipelineHarness off = newHarness()
    off.branch('main', true)
    off.currentBuild.buildCauses << [_class: TIMER]
    helperWithHtml(off)
    off.run()
    assert !('prune' in off.helperVerbs())

    PipelineHarness local = newHarness()
    local.branch('main', true)
    local.currentBuild.buildCauses << [_class: TIMER]
    local.fakeHelper()
    local.run(pruneOlderThanDays: 30, mode: 'local')
    assert local.result == 'SUCCESS' && !('prune' in local.helperVerbs())
}

test('prune: a failure is a warning, never a failed build') { PipelineHarness h ->
    h.branch('main', true)
    h.currentBuild.buildCauses << [_class: TIMER]
    helperWithHtml(h, [rc: [prune: 5], errors: [prune: 'list state machines: AWS refused: AccessDeniedException']])
    h.run(pruneOlderThanDays: 30)
    assert h.result == 'SUCCESS'
    assert h.logText().contains('[mlTrainingPipeline] warning: mltp prune failed: list state machines: AWS refused: AccessDeniedException')
}

test('prune: pruneOlderThanDays must be a whole number of days') { PipelineHarness h ->
    h.fakeHelper()
    h.run(pruneOlderThanDays: '30d')
    assert h.result == 'FAILURE'
    assert h.errors()[0].contains("pruneOlderThanDays must be a whole number of days from 1 to 3650, not '30d'")
    PipelineHarness zero = newHarness()
    zero.fakeHelper()
    zero.run(pruneOlderThanDays: 0)
    assert zero.errors()[0].contains('pruneOlderThanDays must be')
}
