"""The SageMaker jobs of the pipeline, in one place: which states run them, where
their names travel in the execution input (naming.ExecutionInput), and the
CloudWatch log group each kind of job writes to (SageMaker's own names), which
`wait`, `logs`, the IAM policies and the local job runner all use."""

from typing import Dict, Tuple

# The states of the definition that run SageMaker jobs, and where their job
# names travel in the execution input (naming.ExecutionInput).
JOB_STATES: Dict[str, Tuple[str, str]] = {
    "Preprocessing": ("PreprocessingJobName", "processing"),
    "Training": ("TrainingJobName", "training"),
    "Evaluation": ("EvaluationJobName", "processing"),
}
# The step cache's Choice before each job state (definition.REUSE_STATES): when
# the execution input's Cache.reuse names the job state, the run skips it.
REUSE_CHOICES: Dict[str, str] = {"ReusePreprocessing": "Preprocessing", "ReuseTraining": "Training",
                                 "ReuseEvaluation": "Evaluation"}
# The log group of each kind of job (SageMaker's), one stream per job and instance: <job>/<instance>.
LOG_GROUPS = {"processing": "/aws/sagemaker/ProcessingJobs", "training": "/aws/sagemaker/TrainingJobs"}
