// Unit tests of vars/mlApproveModel.groovy and vars/mlFetchModel.groovy: the
// shared runner installs the helper, values travel in the environment only, AWS
// credentials are bound only around the registry call, failures are one line.

import groovy.transform.Field

@Field final String REG_ACCESS_KEY = 'AKIAIOSFODNN7EXAMPLE'
@Field final String REG_SECRET_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY'

Map registryCredentials(PipelineHarness h) {
    h.awsCredentials['aws-deploy'] = [REG_ACCESS_KEY, REG_SECRET_KEY]
    return [credentialsId: 'aws-deploy']
}

// Runs a step inside node { }, as a deployment pipeline calls mlFetchModel; returns its value.
Object runInNode(PipelineHarness h, String var, Map options) {
    Script script = h.loadVar(var)
    Object value = null
    try {
        h.invokeStep('node', [{ -> value = script.invokeMethod('call', [options] as Object[]) }] as Object[])
        h.result = h.currentBuild.result ?: 'SUCCESS'
    } catch (Throwable e) {
        h.thrown = e
        h.result = 'FAILURE'
    }
    return value
}

Closure writesFetchInfo(String version) {
    return { Map ctx ->
        PipelineHarness.write(ctx.env.MLTP_INFO_FILE,
            "arn=arn:aws:sagemaker:eu-west-1:123456789012:model-package/fraud-detection/${version}\n" +
            "group=fraud-detection\nversion=${version}\nstatus=Approved\nmodel=${ctx.env.MLTP_FETCH_DIR}/model.tar.gz\n" +
            "manifest=${ctx.env.MLTP_FETCH_DIR}/model-package.json\nsha256=${'a' * 64}\n")
    }
}

test('mlApproveModel: approves version N of the repo\'s group, credentials only around the call') { PipelineHarness h ->
    h.fakeHelper()
    h.run([version: 3, note: 'beats production', by: 'rm-alice'] + registryCredentials(h), 'mlApproveModel')

    assert h.result == 'SUCCESS', h.logText()
    assert h.helperVerbs() == ['approve']
    assert h.callsOf('node').size() == 1 && h.callsOf('checkout').size() == 1
    Map approve = h.shFor('approve')
    assert approve.env.MLTP_MODEL_VERSION == '3'
    assert approve.env.MLTP_APPROVAL_NOTE == 'beats production'
    assert approve.env.MLTP_APPROVER == 'rm-alice'
    assert approve.env.MLTP_CONFIG == 'config.yaml' && !approve.env.containsKey('MLTP_MODEL_PACKAGE_GROUP')
    assert approve.credentials == ['aws-deploy']
    assert h.installCall().credentials == []
    assert h.installCall().env.MLTP_INSTALL_REQUIREMENTS.endsWith('/requirements-aws.txt')
    h.allText().each { String t -> assert !t.contains(REG_SECRET_KEY) }
}

test('mlApproveModel: reject by run, on a named group without the model repo') { PipelineHarness h ->
    h.fakeHelper()
    h.run([run: 'jenkins-fraud-detection-main-42', decision: 'reject', note: 'drift',
           modelPackageGroup: 'fraud-detection', region: 'eu-west-1'], 'mlApproveModel')

    assert h.result == 'SUCCESS'
    assert h.helperVerbs() == ['reject']
    assert h.callsOf('checkout').isEmpty()
    Map reject = h.shFor('reject')
    assert reject.env.MLTP_MODEL_RUN == 'jenkins-fraud-detection-main-42'
    assert reject.env.MLTP_MODEL_PACKAGE_GROUP == 'fraud-detection' && reject.env.MLTP_REGION == 'eu-west-1'
    assert !reject.env.containsKey('MLTP_CONFIG') && !reject.env.containsKey('MLTP_MODEL_VERSION')
    assert reject.credentials == []
}

test('mlApproveModel: an unknown version fails with the helper\'s one line') { PipelineHarness h ->
    h.fakeHelper(rc: [approve: 2], errors: [approve: 'model package group fraud-detection has no version 9; newest versions: 4 (PendingManualApproval)'])
    h.run([version: 9], 'mlApproveModel')
    assert h.result == 'FAILURE'
    assert h.errors() == ['[mlApproveModel] model package group fraud-detection has no version 9; newest versions: 4 (PendingManualApproval)']
}

test('mlApproveModel: bad options are refused before any agent') { PipelineHarness h ->
    h.fakeHelper()
    h.run([decision: 'maybe', colour: 'red'], 'mlApproveModel')
    assert h.result == 'FAILURE'
    String line = h.errors()[0]
    assert line.startsWith('[mlApproveModel] invalid options: ')
    assert line.contains("unknown option 'colour'") && line.contains('give version or run (one of them)')
    assert line.contains("decision must be approve or reject, not 'maybe'")
    assert h.callsOf('node').isEmpty()

    PipelineHarness noRegion = newHarness()
    noRegion.fakeHelper()
    noRegion.run([version: 1, modelPackageGroup: 'fraud-detection'], 'mlApproveModel')
    assert noRegion.errors()[0].contains('modelPackageGroup needs region')
}

test('mlFetchModel: downloads into the workspace and returns what it fetched') { PipelineHarness h ->
    h.fakeHelper(actions: ['fetch-model': writesFetchInfo('3')])
    Map fetched = runInNode(h, 'mlFetchModel', registryCredentials(h)) as Map

    assert h.result == 'SUCCESS', String.valueOf(h.thrown) + h.logText()
    assert h.helperVerbs() == ['fetch-model']
    Map call = h.shFor('fetch-model')
    assert call.env.MLTP_FETCH_DIR == h.workspace.path + '/model'
    assert call.env.MLTP_CONFIG == 'config.yaml'
    assert !call.env.containsKey('MLTP_MODEL_VERSION')          // the newest Approved
    assert call.credentials == ['aws-deploy'] && h.installCall().credentials == []
    assert fetched.version == '3' && fetched.status == 'Approved'
    assert fetched.model == h.workspace.path + '/model/model.tar.gz'
    assert h.logText().contains('[mlFetchModel] fetched fraud-detection/3 (Approved) to ' + h.workspace.path + '/model/model.tar.gz, SHA-256 verified')
    h.allText().each { String t -> assert !t.contains(REG_SECRET_KEY) }
}

test('mlFetchModel: a named version and group, an absolute folder') { PipelineHarness h ->
    h.fakeHelper(actions: ['fetch-model': writesFetchInfo('2')])
    runInNode(h, 'mlFetchModel', [version: 2, to: '/srv/models', modelPackageGroup: 'fraud-detection', region: 'eu-west-1'])
    assert h.result == 'SUCCESS'
    Map call = h.shFor('fetch-model')
    assert call.env.MLTP_MODEL_VERSION == '2' && call.env.MLTP_FETCH_DIR == '/srv/models'
    assert call.env.MLTP_MODEL_PACKAGE_GROUP == 'fraud-detection' && !call.env.containsKey('MLTP_CONFIG')
}

test('mlFetchModel: nothing approved, and a checksum mismatch, are one line each') { PipelineHarness h ->
    h.fakeHelper(rc: ['fetch-model': 2], errors: ['fetch-model': 'model package group fraud-detection has no Approved version to fetch; approve one first (mltp approve --version N), or name one with --version'])
    runInNode(h, 'mlFetchModel', [:])
    assert h.result == 'FAILURE'
    assert h.thrown.message == '[mlFetchModel] model package group fraud-detection has no Approved version to fetch; approve one first (mltp approve --version N), or name one with --version'

    PipelineHarness bad = newHarness()
    bad.fakeHelper(rc: ['fetch-model': 5], errors: ['fetch-model': 's3://b/k has SHA-256 00ff, but fraud-detection/3 was registered with 11ee: the artifact changed since registration; nothing written'])
    runInNode(bad, 'mlFetchModel', [:])
    assert bad.result == 'FAILURE'
    assert bad.thrown.message.startsWith('[mlFetchModel] checksum check failed: s3://b/k has SHA-256 00ff')
}
