"""Which release of AWS's training toolkit (`sagemaker-training`) a local
environment gets, by the Python it is built on (envs.py).

No release declares Requires-Python; what bounds them is their classifiers
and their protobuf pin, read from each release's setup.py:

- 5.x (5.0.0 to 5.1.4): protobuf>=5.28.1, whose releases need Python 3.8 or
  later; classifiers 3.8 to 3.10, used up to 3.13.
- 4.7.0 to 4.9.0: classifiers from 3.8 on (protobuf<=3.20.3).
- 4.0.1 to 4.6.1: classifiers 3.7 and 3.8, protobuf>=3.9.2,<=3.20.3 (3.20.3 is
  the last protobuf with builds for 3.7). 4.6.1 is the newest for Python 3.7.

So Python 3.8 and later get the newest release, 3.7 gets 4.6.1 (pip then picks
the supporting packages, numpy, scipy, boto3, gevent, psutil, that still
install on 3.7, by their own Requires-Python), and anything older is refused
before a run starts: SageMaker's own containers run 3.7 at the oldest for the
versions a local run can build with this toolkit line.
"""

from typing import Tuple

from ..errors import InvalidInput

# (lowest Python, the toolkit requirement), newest first.
RELEASES: Tuple[Tuple[Tuple[int, int], str], ...] = (
    ((3, 8), "sagemaker-training==5.1.4"),
    ((3, 7), "sagemaker-training==4.6.1"),
)
NEWEST = RELEASES[0][1]
OLDEST_PYTHON = RELEASES[-1][0]


def for_python(version: str, named: str = "") -> str:
    """The toolkit requirement for an interpreter of `version` ('3.7.16');
    InvalidInput (exit 2) where no release supports it. `named`: how the
    message names that interpreter (the --python path)."""
    parts = tuple(int(p) for p in version.split(".")[:2])
    for lowest, requirement in RELEASES:
        if parts >= lowest:
            return requirement
    oldest = ".".join(map(str, OLDEST_PYTHON))
    raise InvalidInput(f"{named or 'the Python'} is Python {version}: local runs need Python {oldest} or later "
                       f"(AWS's training toolkit, sagemaker-training, supports no older one); "
                       f"give --python (MLTP_PYTHON) a Python {oldest} or later")
