"""Our lazy dlib engine computes exactly what face_recognition does, on real faces."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import in_ci
from matcher.faces import DlibSpec, process_engine
from matcher.media import decode_image


def test_engine_gives_face_recognitions_own_encodings(demo_folder):
    """Our lazy dlib engine computes exactly what face_recognition.face_encodings does."""
    # Looked up, not imported: importing it here would flip Pillow's LOAD_TRUNCATED_IMAGES
    # for every later test in this process (truncated uploads would then decode).
    if importlib.util.find_spec("face_recognition") is None:
        reason = ("face-recognition is not installed: `make install` installs it (pip install --no-deps "
                  "face-recognition==1.3.0; its dlib requirement is met by dlib-bin)")
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    code = (
        "import sys, json, face_recognition as fr\n"
        "img = fr.load_image_file(sys.argv[1])\n"
        "boxes = fr.face_locations(img)\n"
        "print(json.dumps([[list(b), list(map(float, e))] for b, e in zip(boxes, fr.face_encodings(img, boxes))]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(demo_folder["pair"])], capture_output=True, text=True,
                         check=True)
    theirs = sorted(json.loads(out.stdout))
    ours = sorted(([*f.box.as_list()], list(map(float, f.embedding)))
                  for f in process_engine(DlibSpec()).faces(decode_image(demo_folder["pair"].read_bytes())))
    assert [box for box, _ in ours] == [box for box, _ in theirs]
    for (_, a), (_, b) in zip(ours, theirs):
        assert np.linalg.norm(np.array(a) - np.array(b)) < 1e-4
