"""The same batch run with everything on gs://, against a real GCS emulator on loopback."""

import csv
import io

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline

from beam_pipelines import batch
from beam_pipelines.options import LOCAL_RUNNER
from models import storage
from models.registry import ModelRegistry
from tests.helpers import colour_image


def test_input_images_registry_and_output_all_on_gcs(gcs_emulator, trained_registry):
    root = "gs://bucket/run"
    # The registry too: upload the trained model through the registry's own code path.
    local = ModelRegistry(str(trained_registry)).resolve("colours")
    remote = ModelRegistry(f"{root}/models")
    openvino = {f"openvino/{p.name}": str(p) for p in (trained_registry / "colours/versions/1/openvino").iterdir()}
    version = remote.register(local.card, local.saved_model_uri, openvino)
    remote.set_alias("colours", "production", version)

    rows = []
    for i, colour in enumerate(["red", "green", "blue"] * 3):
        storage.write_bytes(f"{root}/images/{i}.png", colour_image(colour, 300 + i))
        rows.append(f"{root}/images/{i}.png,{colour}")
    storage.write_bytes(f"{root}/images/corrupt.jpg", b"\xff\xd8\xff\xe0garbage")
    rows += [f"{root}/images/corrupt.jpg,", f"{root}/images/absent.png,", "gs://other-bucket/x.png,"]
    storage.write_text(f"{root}/in.csv", "image_uri,truth\n" + "\n".join(rows) + "\n")

    options = PipelineOptions(
        [
            f"--runner={LOCAL_RUNNER}",
            f"--input={root}/in.csv",
            f"--output={root}/out/predictions.csv",
            f"--model_root={root}/models",
            "--runtime=openvino",  # its IR is copied down from gs:// beside the SavedModel
        ]
    )
    with TestPipeline(options=options) as p:
        batch.build_pipeline(p, options)

    out = list(csv.DictReader(io.StringIO(storage.read_text(f"{root}/out/predictions.csv"))))
    assert len(out) == len(rows) == 12
    by_uri = {r["image_uri"]: r for r in out}
    assert by_uri[f"{root}/images/corrupt.jpg"]["error"].startswith("decode_error")
    assert by_uri[f"{root}/images/absent.png"]["error"].startswith("not_found")
    assert by_uri["gs://other-bucket/x.png"]["error"].startswith("not_found")
    good = [r for r in out if not r["error"]]
    assert len(good) == 9 and all((r["model_version"], r["runtime"]) == (str(version), "openvino") for r in good)
    assert sum(r["labels"] == r["truth"] for r in good) >= 8
