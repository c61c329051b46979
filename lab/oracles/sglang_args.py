"""Runs with SGLang on the path: parse command lines with SGLang's own ``ServerArgs``.

stdin/stdout as lab/oracles/vllm_args.py. An argv passes when SGLang's argparse setup
(``ServerArgs.add_cli_args``) accepts it and ``ServerArgs.from_cli_args`` builds the server
arguments (its ``__post_init__`` checks, which run without a GPU or the model's files).
Environment names starting with ``SGLANG_`` must be fields of ``sglang.srt.environ.Envs``,
SGLang's registry of the variables it reads.
"""

import argparse
import contextlib
import importlib.metadata
import io
import json
import sys


def main() -> int:
    request = json.load(sys.stdin)
    from sglang.srt.environ import Envs
    from sglang.srt.server_args import ServerArgs

    results = []
    for label, argv in request["argvs"]:
        parser = argparse.ArgumentParser(prog="sglang.launch_server")
        ServerArgs.add_cli_args(parser)
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                args = parser.parse_args(argv)
            ServerArgs.from_cli_args(args)
            results.append([label, None])
        except SystemExit:
            results.append([label, stderr.getvalue().strip().splitlines()[-1]])
        except Exception as error:
            results.append([label, f"{type(error).__name__}: {error}"])
    unknown = [name for name in request["environment"] if name.startswith("SGLANG_") and not hasattr(Envs, name)]
    import sglang

    version = getattr(sglang, "__version__", None) or importlib.metadata.version("sglang")
    json.dump({"version": version, "results": results, "unknown_environment": unknown}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
