"""The benchmarks, shipped with the package: ``resilient-aws bench [overhead|storm|dns|all]``.

Why they ship: what resilient_aws costs depends on the botocore, the Python and the machine it runs on,
so a user measures it on their own machine against their own botocore, with nothing but the installed
package (a ``pip install`` has no ``benchmarks/`` folder). The repository's ``benchmarks/results.py``
runs these same modules to write ``benchmarks/RESULTS.md``.

One job per module:

- :mod:`~resilient_aws.bench.overhead`: what the success path costs (the wrapper alone, end to end, threads);
- :mod:`~resilient_aws.bench.storm`: retry storms, counted at the server (needs the ``drill`` extra: moto);
- :mod:`~resilient_aws.bench.dns`: what a DNS cache hit costs, and that pooled calls do no DNS work;
- :mod:`~resilient_aws.bench.timing`: per-call timing, interleaved rounds, progress lines on stderr;
- :mod:`~resilient_aws.bench.machine`: the one-line description of the machine and the software measured;
- :mod:`~resilient_aws.bench.extras`: which optional packages a benchmark needs, and how to install them;
- :mod:`~resilient_aws.bench.report`: the Markdown file ``--markdown PATH`` writes;
- :mod:`~resilient_aws.bench.cli`: the ``bench`` subcommand's options and what runs them.

Importing this package imports nothing else: ``resilient_aws.__main__`` stays light (no botocore work, no
moto) until a benchmark actually runs.
"""
