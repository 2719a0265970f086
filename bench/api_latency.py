"""Latency of POST /api/check for a phone photo, through a real server on localhost.

    .venv/bin/python bench/api_latency.py [RUNS]     (default 10)

The photo: scikit-image's astronaut scaled into a 4032x3024 JPEG (a 12 MP
phone photo, face ~700 px wide), EXIF-rotated like a phone held upright.
One person is enrolled. Prints the first call (models loading) and the median,
min and max of RUNS later calls, each a new photo (a pixel changed, so no
call is answered from an earlier one's stored result).
"""

import io
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from PIL import Image

from matcher.demo import package_photos
from matcher.policy import load_policy
from matcher.services import access, open_session
from matcher.web import create_app


def phone_photo(astronaut: Image.Image, variant: int) -> bytes:
    upright = astronaut.resize((4032, 4032)).crop((504, 0, 3528, 4032))  # 3024x4032 portrait, face ~700 px
    canvas = upright.rotate(-90, expand=True)  # stored 4032x3024, sideways
    canvas.putpixel((variant % 4032, 0), (variant % 256, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 8  # turn 90 degrees counter-clockwise to view: stored sideways, as phones do
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def main(runs: int) -> None:
    astronaut, _ = package_photos()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "consent.db"
        reference = Path(folder) / "reference.jpg"
        astronaut.crop((100, 0, 400, 300)).save(reference)
        # Enrolled by another process: this one loads the face models on its first call, as a server does.
        subprocess.run([sys.executable, "-m", "matcher", "--db", str(db), "enroll", "eileen", str(reference)],
                       check=True, stdout=subprocess.DEVNULL)
        with open_session(db, load_policy(None)) as session:
            key = access.add_credential(session, "apikey", "bench", "bench")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(str(db), load_policy(None)), host="127.0.0.1", port=port,
                                               log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        photos = [phone_photo(astronaut, variant) for variant in range(runs + 1)]
        print(f"phone photo: 4032x3024 JPEG, {len(photos[0]) / 1e6:.1f} MB, EXIF-rotated; 1 person enrolled")
        times, decisions = [], set()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for index, photo in enumerate(photos):
                started = time.perf_counter()
                response = client.post("/api/check", headers={"X-API-Key": key},
                                       files={"file": (f"photo-{index}.jpg", photo, "image/jpeg")})
                times.append(time.perf_counter() - started)
                response.raise_for_status()
                decisions.add(response.json()["decision"])
        server.should_exit = True
    print(f"first call (loads the face models): {times[0]:.2f} s")
    later = times[1:]
    print(f"next {len(later)} calls: median {statistics.median(later):.2f} s, min {min(later):.2f}, "
          f"max {max(later):.2f}; decisions {sorted(decisions)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
