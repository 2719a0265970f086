"""A new detector and embedding model plug in without touching the scan, the store or the services.

The test-only square engine (tests/engines.py) runs through the real scan
service, store and rules: its "faces" are enrolled, matched, decided and
reported like any other; embeddings of another engine are never compared with its.
"""

import numpy as np
from PIL import Image

from engines import SquareSpec, square_photo
from helpers import Cli
from matcher.faces import process_engine
from matcher.model import Reference
from matcher.observe import ScanOptions
from matcher.policy import load_policy
from matcher.references import read_references
from matcher.services import enrollment, open_session
from matcher.services.scanning import scan

RED, BLUE, GREEN = (220, 40, 40), (40, 60, 220), (40, 200, 60)


def save(rgb: np.ndarray, path) -> str:
    Image.fromarray(rgb).save(path, quality=95)
    return str(path)


def test_a_test_only_engine_runs_through_the_real_pipeline(new_db, tmp_path):
    spec = SquareSpec()
    reference = save(square_photo([RED], seed=1), tmp_path / "red-reference.jpg")
    media = tmp_path / "media"
    media.mkdir()
    save(square_photo([RED], seed=2), media / "red.jpg")
    save(square_photo([BLUE, RED], seed=3), media / "blue-and-red.jpg")
    save(square_photo([BLUE], seed=4), media / "blue.jpg")
    save(square_photo([GREEN, BLUE], seed=5), media / "green-and-blue.jpg")

    db = new_db("c")
    with open_session(db, load_policy(), engine=spec.name) as session:
        # A reference of another engine's embeddings, at distance 0 from the red square's: never compared.
        red = process_engine(spec).faces(np.asarray(Image.open(reference)))[0].embedding
        session.store.people.add_references("Other engine", "another_engine_v1", [Reference("x", red)], None, [])
        photos = read_references([reference], process_engine(spec))
        enrolled = enrollment.enroll(session, "Red", photos, "test", verified_by="operator")
        assert enrolled.added == 1
        summary = scan(session, [str(media)], options=ScanOptions(engine=spec))
    assert (summary.files, summary.scanned, summary.errors, summary.faces) == (4, 4, 0, 6)

    report = Cli(db).report()
    assert {name: entry["decision"] for name, entry in report.items()} == {
        "red.jpg": "remove", "blue-and-red.jpg": "remove", "blue.jpg": "none", "green-and-blue.jpg": "none"}
    [match] = report["blue-and-red.jpg"]["matches"]
    assert match["person"] == "Red" and match["distance"] < 0.01 and match["rule"] == "no-consent"
    assert {face["person"] for face in report["blue-and-red.jpg"]["faces"]} == {"Red", None}
