"""Runs inside a venv holding vLLM: parse command lines with vLLM's own server parser.

stdin: JSON ``{"argvs": [[label, [arg, ...]], ...], "environment": [name, ...]}`` (the
arguments after ``python -m vllm.entrypoints.openai.api_server``). stdout: JSON
``{"version", "results": [[label, error or null]], "unknown_environment": [names]}``.
An argv passes when vLLM's parser accepts it, ``validate_parsed_serve_args`` (the checks the
server runs before loading) raises nothing and ``AsyncEngineArgs.from_cli_args`` builds the
engine arguments. Standard library and vLLM only: this file is not part of the collection.
"""

import contextlib
import io
import json
import sys


def main() -> int:
    request = json.load(sys.stdin)
    import vllm
    import vllm.envs
    from vllm.engine.arg_utils import AsyncEngineArgs
    try:  # vLLM 0.33 moved them
        from vllm.entrypoints.common.cli_args import make_arg_parser, validate_parsed_serve_args
    except ImportError:
        from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    results = []
    for label, argv in request["argvs"]:
        parser = make_arg_parser(FlexibleArgumentParser(prog="vllm.entrypoints.openai.api_server"))
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                args = parser.parse_args(argv)
            validate_parsed_serve_args(args)
            AsyncEngineArgs.from_cli_args(args)
            results.append([label, None])
        except SystemExit:
            results.append([label, stderr.getvalue().strip().splitlines()[-1]])
        except Exception as error:  # what vLLM raises before loading a model
            results.append([label, f"{type(error).__name__}: {error}"])
    known = set(vllm.envs.environment_variables)
    unknown = [name for name in request["environment"] if name.startswith("VLLM_") and name not in known]
    json.dump({"version": vllm.__version__, "results": results, "unknown_environment": unknown}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
