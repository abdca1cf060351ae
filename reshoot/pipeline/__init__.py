"""Every stage in one call: a job file (``reshoot run``, :mod:`.job`), many jobs on Ray (``reshoot batch``,
:mod:`.batch`) and the sample shoot end to end (``reshoot demo``, :mod:`.demo`)."""
