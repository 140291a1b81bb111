"""The verbs of the mltp command (docs/contract.md, 9.1), one module each, named
after the verb (mltp/verbs.py is the table). A verb gets what the CLI made
once: the Invocation (repo, loaded config, run context, output) and the AWS
clients the CLI chose (real AWS or the local emulator); it returns its result
and leaves printing it to the CLI. Nothing here imports mltp.local or mltp.cli."""
