package org.jenkinsci.plugins.workflow.steps

// Stand-in for the timeout step's execution: its ExceededTimeout is the cause of
// the FlowInterruptedException a firing `timeout` throws into its body.
class TimeoutStepExecution {
    static class ExceededTimeout {
        String getShortDescription() { 'Timeout has been exceeded' }
    }
}
