// Unit tests of the one option table (OPTIONS in vars/mltpHelper.groovy) and of the
// shared runner's pieces the steps reuse: the help pages and docs/contract.md 9.4
// list exactly the table's options and defaults; one resolver for the three steps;
// one node-or-label helper, one optional-plugin wrapper, one key=value reader,
// no default-branch rule of the step's own; HTML-escaped build descriptions.

import groovy.transform.Field

@Field final List STEPS = ['mlTrainingPipeline', 'mlApproveModel', 'mlFetchModel']

// A default as the docs write it: 'text', null, true, 180.
String literal(Object value) {
    return value instanceof String ? "'" + value + "'" : String.valueOf(value)
}

// option -> default as documented, from the <dt> entries of a help page. In one
// <dt>, "(default <code>X</code> ...)" applies to the names listed since the last one.
Map helpPageDefaults(String page) {
    Map documented = [:]
    (page =~ /(?s)<dt>(.*?)<\/dt>/).each { List dt ->
        List pending = []
        (dt[1] =~ /<code>([A-Za-z]+)<\/code>|\(default <code>([^<]*)<\/code>[^)]*\)/).each { List m ->
            if (m[1] != null) {
                pending.add(m[1])
            } else {
                pending.each { String name -> documented[name] = m[2] }
                pending = []
            }
        }
        assert pending.isEmpty(), "no default stated for ${pending} in <dt>${dt[1]}</dt>"
    }
    return documented
}

// step -> [option: default as documented] from the tables of docs/contract.md 9.4.
Map contractDefaults() {
    String text = new File(ROOT, 'docs/contract.md').text
    String section = text.substring(text.indexOf('### 9.4 The Jenkins step'), text.indexOf('### 9.5 '))
    Map tables = [:]
    String step = null
    section.readLines().each { String line ->
        def heading = line =~ /^Options of `(\w+)`/
        if (heading.find()) {
            step = heading.group(1)
            tables[step] = [:]
        } else if (line.startsWith('| `')) {
            def row = line =~ /^\| `(\w+)` \[`([^`]*)`[^\]]*\] \|/
            assert row.find(), "9.4: a row without `option` [`default`]: ${line}"
            assert step != null, "9.4: a table row before any 'Options of `step`' line: ${line}"
            tables[step][row.group(1)] = row.group(2)
        }
    }
    return tables
}

Map tableDefaults(Script runner, String step) {
    Map expected = [:]
    runner.optionNames(step).each { String name -> expected[name] = literal(runner.@OPTIONS[name].default) }
    return expected
}

// Code lines of vars/*.groovy (comments dropped), by file name.
Map sources() {
    Map code = [:]
    new File(ROOT, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.each { File f ->
        code[f.name] = f.readLines().findAll { !it.trim().startsWith('//') }.join('\n')
    }
    return code
}

test('options: each help page lists exactly the table\'s options of its step, with the same defaults') { PipelineHarness h ->
    Script runner = h.loadVar('mltpHelper')
    STEPS.each { String step ->
        Map documented = helpPageDefaults(new File(ROOT, "vars/${step}.txt").text)
        Map expected = tableDefaults(runner, step)
        assert documented.keySet() == expected.keySet(), step
        assert documented == expected, step
    }
    assert runner.optionNames('mlTrainingPipeline').size() == 22
}

test('options: docs/contract.md 9.4 lists exactly the table\'s options of each step, with the same defaults') { PipelineHarness h ->
    Script runner = h.loadVar('mltpHelper')
    Map tables = contractDefaults()
    assert tables.keySet() == STEPS as Set
    STEPS.each { String step ->
        assert tables[step] == tableDefaults(runner, step), step
    }
}

test('options: every entry of the table is well formed') { PipelineHarness h ->
    Map options = h.loadVar('mltpHelper').@OPTIONS
    List types = ['string', 'boolean', 'whole', 'version', 'map', 'text', 'closure']
    options.each { String name, Map spec ->
        assert spec.containsKey('default') && spec.doc && spec.steps, name
        assert spec.steps.every { it in STEPS }, name
        assert (spec.type ?: 'string') in types, name
        assert spec.keySet().every { it in ['default', 'type', 'oneOf', 'fold', 'pattern', 'patternDoc', 'unit', 'min', 'max',
                                             'cap', 'example', 'fields', 'doc', 'steps'] }, name
        if (spec.oneOf) {
            assert spec.default in spec.oneOf, name
        }
    }
}

test('options: one resolver for the three steps, an unknown option named with a suggestion') { PipelineHarness h ->
    h.fakeHelper()
    h.run([credentialId: 'x'], 'mlFetchModel')
    assert h.result == 'FAILURE'
    assert h.errors() == ["[mlFetchModel] invalid options: unknown option 'credentialId' (did you mean 'credentialsId'?)"]
    assert h.shCalls().isEmpty()

    PipelineHarness approve = newHarness()
    approve.fakeHelper()
    approve.run([versoin: 3], 'mlApproveModel')
    assert approve.errors() == ["[mlApproveModel] invalid options: unknown option 'versoin' (did you mean 'version'?); " +
                                'give version or run (one of them)']
    assert approve.callsOf('node').isEmpty()

    // an option of another step is not one of this step's
    PipelineHarness other = newHarness()
    other.fakeHelper()
    other.run([version: 3, mode: 'local'], 'mlApproveModel')
    assert other.errors()[0].contains("unknown option 'mode'")

    PipelineHarness far = newHarness()
    far.run([colour: 'blue'], 'mlFetchModel')
    assert far.errors()[0] == "[mlFetchModel] invalid options: unknown option 'colour' (known options: config, region, " +
                              'credentialsId, helperCommand, helperPipSpec, python, version, modelPackageGroup, to)'

    // the same checks of a value in every step
    PipelineHarness values = newHarness()
    values.run([version: 3.5, region: 'Mars', to: 7], 'mlFetchModel')
    String line = values.errors()[0]
    assert line.contains('version must be a number or a string')
    assert line.contains("region 'Mars' is not an AWS region name (like eu-west-1)")
    assert line.contains('to must be a string')

    // no step keeps a copy: the table is the only list of options
    sources().each { String file, String code ->
        assert !code.contains('DEFAULTS'), file
        assert !(code =~ /\bresolveOptions\s*\(\s*Map/) || file == 'mltpHelper.groovy', file
    }
}

test('options: a blank string means the default, and is an error only where the default is a value') { PipelineHarness h ->
    h.fakeHelper()
    h.run([version: 3, note: '  ', by: ''], 'mlApproveModel')
    assert h.result == 'SUCCESS', h.logText()
    Map approve = h.shFor('approve')
    assert !approve.env.containsKey('MLTP_APPROVAL_NOTE') && !approve.env.containsKey('MLTP_APPROVER')

    PipelineHarness config = newHarness()
    config.run([config: ' '], 'mlFetchModel')
    assert config.errors() == ['[mlFetchModel] invalid options: config must not be empty']
}

test('structure: node, optional plugins and key=value files each have one implementation, in the runner') { PipelineHarness h ->
    Map code = sources()
    code.each { String file, String src ->
        if (file != 'mltpHelper.groovy') {
            assert !(src =~ /\bnode\s*[({]/), "${file}: use mltpHelper.onAgent"
            assert !src.contains('NoSuchMethodError') && !src.contains('MissingMethodException') || file == 'mlApproveModel.groovy',
                   "${file}: use mltpHelper.optionalStep"
            assert !src.contains("indexOf('=')"), "${file}: use mltpHelper.readKeyValues"
        }
        // the default branch is the helper's verdict (the info file's register line), never a rule here
        assert !src.contains('BRANCH_IS_PRIMARY') && !src.contains('BRANCH_NAME'), file
    }
    // mlApproveModel's one catch is the approval's own timeout, not a plugin check
    assert (code['mlApproveModel.groovy'] =~ /MissingMethodException/).count == 1
    assert !code['mlApproveModel.groovy'].contains('NoSuchMethodError')
    assert (code['mltpHelper.groovy'] =~ /\bnode\s*[({]/).count == 2
    assert new File(ROOT, 'vars/mlTrainingPipeline.groovy').readLines().size() <= 450
}

test('structure: the runner keeps one named list of the helper verbs') { PipelineHarness h ->
    Script runner = h.loadVar('mltpHelper')
    List verbs = runner.@VERBS
    assert verbs.size() == (verbs as Set).size()
    assert verbs.every { it ==~ /[a-z]+(-[a-z]+)*/ }
    String src = new File(ROOT, 'vars/mltpHelper.groovy').text
    assert (src =~ /@Field final List VERBS = \[/).count == 1
    sources().each { String file, String code ->
        assert !code.contains("'fetch-model', 'approve'") || file == 'mltpHelper.groovy'   // no second copy
    }
}

test('build description: hostile text from the run is escaped, ESC dropped; only the report link is HTML') { PipelineHarness h ->
    String hostile = '<a href="https://evil.example/approve">PASSED: click to approve</a>'
    h.branch('main', true)
    Map actions = [wait: { Map ctx -> PipelineHarness.write(ctx.env.MLTP_REPORT_DIR + '/report.html', '<!DOCTYPE html>\n') }]
    h.fakeHelper(summary: hostile + ' \u001b[31mred\u001b[0m it\'s & done', actions: actions)
    h.run()
    assert h.result == 'SUCCESS'
    String description = h.currentBuild.description
    String link = '<a href="https://jenkins.example.com/job/ml-pipeline/job/main/7/artifact/.mltp/report/report.html">report.html</a>'
    assert description == '&lt;a href=&quot;https://evil.example/approve&quot;&gt;PASSED: click to approve&lt;/a&gt; ' +
                          '[31mred[0m it&#39;s &amp; done ' + link
    assert !description.contains('\u001b')
    assert !description.contains('evil.example/approve">')
    assert (description =~ /</).count == 2          // the step's own <a ...> and </a>, nothing else

    // the approval's parts too: a model name from the run, an approver's id
    PipelineHarness approval = newHarness()
    approval.branch('main', true)
    approval.awsCredentials['aws-ml'] = ['AKIAIOSFODNN7EXAMPLE', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY']
    approval.fakeHelper(approvalFiles: true)
    approval.inputHandler = { Map options -> [decision: 'Approve', reason: '', approver: '<img src=x onerror=alert(1)>\u001b'] }
    approval.run(credentialsId: 'aws-ml', approval: [submitter: 'rm'])
    assert approval.result == 'SUCCESS'
    assert approval.currentBuild.description.endsWith('; approved fraud-detection/3 (by &lt;img src=x onerror=alert(1)&gt;)')
}

test('escapeHtml: the five characters, control and invisible format characters') { PipelineHarness h ->
    Script runner = h.loadVar('mltpHelper')
    assert runner.escapeHtml('a & b < c > d " e \' f') == 'a &amp; b &lt; c &gt; d &quot; e &#39; f'
    assert runner.escapeHtml('x\u001b[1my\r\n\t\u0000z\u202Eq\u0085') == 'x[1myzq'
    assert runner.escapeHtml('auc 0.94 — passed ✓') == 'auc 0.94 — passed ✓'
    assert runner.escapeHtml(null) == ''
}
