"""Regenerates api_pb2.py / api_pb2_grpc.py from api.proto (needs grpcio-tools, a dev dependency).

python -m gpu_steward_agent.podresources.generate          # rewrite the committed stubs
python -m gpu_steward_agent.podresources.generate --check  # exit 1 when they are stale
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
STUBS = ("api_pb2.py", "api_pb2_grpc.py")


def generate(out_dir: Path) -> None:
    from grpc_tools import protoc  # dev dependency only

    args = ["protoc", f"-I{HERE}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", str(HERE / "api.proto")]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on api.proto")
    # protoc writes a top-level "import api_pb2"; make it relative so the stubs live inside this package.
    grpc_stub = out_dir / "api_pb2_grpc.py"
    text = grpc_stub.read_text()
    grpc_stub.write_text(text.replace("import api_pb2 as api__pb2", "from . import api_pb2 as api__pb2"))


def stale_stubs() -> list[str]:
    """Which committed stubs no longer match api.proto.

    Compares what the proto means, not the generator's text, so a newer grpcio-tools alone does not
    make the stubs stale: the committed api_pb2 must carry exactly the descriptor protoc builds from
    api.proto, and api_pb2_grpc must route every RPC the proto declares.
    """
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    from . import api_pb2

    stale = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "api.pb"
        if protoc.main(["protoc", f"-I{HERE}", f"--descriptor_set_out={out}", str(HERE / "api.proto")]) != 0:
            raise RuntimeError("protoc failed on api.proto")
        fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    committed = descriptor_pb2.FileDescriptorProto.FromString(api_pb2.DESCRIPTOR.serialized_pb)
    # protoc adds json_name to a descriptor set but not to the embedded copy: compare without it.
    for msg in fresh.message_type:
        for field in msg.field:
            field.ClearField("json_name")
    if committed != fresh:
        stale.append("api_pb2.py")
    grpc_text = (HERE / "api_pb2_grpc.py").read_text()
    routes = [f"/{fresh.package}.{svc.name}/{m.name}" for svc in fresh.service for m in svc.method]
    if any(f"'{route}'" not in grpc_text for route in routes):
        stale.append("api_pb2_grpc.py")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report whether the stubs are current")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_stubs()
        if stale:
            print(f"stale generated stubs: {', '.join(stale)}; run python -m gpu_steward_agent.podresources.generate")
            return 1
        print("generated stubs are current")
        return 0
    generate(HERE)
    print(f"wrote {', '.join(STUBS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
