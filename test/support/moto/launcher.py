"""moto's server for stemcell's AWS end-to-end run, with the gaps between moto 5.2.1 and AWS filled first.

Usage: python3 launcher.py <events/samples dir>
Prints one JSON line {"port": N, "moto": "5.2.1"} on stdout once it listens on 127.0.0.1:N (a free port
the kernel chose), then serves until killed. Any other moto version refuses to start: every patch below is
written against 5.2.1's internals.

Each patch lives in patches/<service>.py and names the AWS documentation page whose behaviour it follows.
Nothing here knows stemcell's code: the patches make moto behave as AWS documents, for any caller.
"""

import json
import os
import sys
import traceback

WANTED = "5.2.1"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: launcher.py <events/samples dir>")
    try:
        import moto
    except ImportError:
        sys.exit(f"moto is not installed in {sys.executable}: pip install 'moto[server]=={WANTED}'")
    if moto.__version__ != WANTED:
        sys.exit(
            f"moto {moto.__version__} is installed in {sys.executable}, the patches are written for "
            f"{WANTED}: pip install 'moto[server]=={WANTED}'"
        )
    # The AWS-owned catalogue of public images is ~300 MB of memory and nothing here launches from it.
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

    from werkzeug.serving import make_server

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from patches import apply_all

    # Bind first: the patches need the port (queue URLs, custom-resource response URLs).
    dispatcher = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        # A request moto fails on shows its traceback on stderr (the test prints it when a step fails).
        try:
            return dispatcher(environ, start_response)
        except Exception:
            traceback.print_exc()
            raise

    server = make_server("127.0.0.1", 0, app, threaded=True)
    port = server.server_address[1]
    os.environ["MOTO_PORT"] = str(port)
    os.environ["MOTO_HOST"] = "http://127.0.0.1"
    apply_all(samples_dir=sys.argv[1], endpoint=f"http://127.0.0.1:{port}")
    print(json.dumps({"port": port, "moto": moto.__version__}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
