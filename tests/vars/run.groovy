// Runs every tests/vars/*Test.groovy. Usage: groovy -cp tests/vars/lib tests/vars/run.groovy ROOT [NAME-FILTER]
// NAME-FILTER: run the tests whose name contains it; '-text' runs those whose name does not.
//
// A test file registers tests with   test('name') { PipelineHarness h -> ... }
// Each test gets a fresh harness (newHarness() makes more); all are cleaned up after.
// Prints one line per test and, last, "N passed, N failed"; exits 1 on any failure.

File root = new File(args[0]).canonicalFile
String filter = args.length > 1 ? args[1] : null

List<Map> tests = []
List<PipelineHarness> harnesses = []
Binding binding = new Binding()
binding.setVariable('ROOT', root)
binding.setVariable('test', { String name, Closure body -> tests.add([name: name, body: body]) })
binding.setVariable('newHarness', { -> PipelineHarness h = new PipelineHarness(root); harnesses.add(h); h })
GroovyShell shell = new GroovyShell(this.class.classLoader, binding)
List<File> files = new File(root, 'tests/vars').listFiles().findAll { it.name.endsWith('Test.groovy') }.sort { it.name }
files.each { shell.evaluate(it) }

int passed = 0
int failed = 0
tests.each { Map t ->
    boolean exclude = filter != null && filter.startsWith('-')
    if (filter && (exclude ? t.name.contains(filter.substring(1)) : !t.name.contains(filter))) {
        return
    }
    PipelineHarness h = new PipelineHarness(root)
    harnesses.add(h)
    long started = System.currentTimeMillis()
    try {
        t.body.call(h)
        passed++
        println "ok    ${t.name} (${System.currentTimeMillis() - started} ms)"
    } catch (Throwable e) {
        failed++
        println "FAIL  ${t.name}"
        println e.toString().readLines().collect { '      ' + it }.join('\n')
        e.stackTrace.findAll { it.fileName?.endsWith('.groovy') && it.lineNumber > 0 }.take(6).each {
            println "        at ${it.fileName}:${it.lineNumber}"
        }
        harnesses.each { PipelineHarness x ->
            if (x.thrown) {
                println "      build threw: ${x.thrown}"
            }
            println '      build log (last 25 lines):'
            x.log.takeRight(25).each { println '        | ' + it }
        }
    } finally {
        harnesses.each { it.cleanup() }
        harnesses.clear()
    }
}
if (passed + failed == 0) {
    println 'no tests ran'
    failed = 1
}
println "${passed} passed, ${failed} failed"
System.exit(failed ? 1 : 0)
