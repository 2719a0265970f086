"""What separates passing from failing liveness videos: the figures of models/liveness.md.

    .venv/bin/python bench/liveness_margins.py [--quick]      (about 6 minutes on 2 cores)

1. Real head turns (Hamilton clip, Miranda's shot 2.74-7.03 s, sampled at 10 fps): every
   pair of a frontal frame (|yaw| < 4 deg) and a turned frame up to 1.5 s before or after
   it (|yaw| >= 8 deg or pitch changed >= 10 deg), the texture tracked from the frontal
   frame to the turned one (backwards in time too: a real head played backwards is still
   a real head): landmark and texture parallax.
2. Flat pictures: photos from /work/shared/faces turned as a plane (yaw +-30/45 deg, pitch
   +-25/35 deg, combined 30/20), at 0.7, 1, 2 and 3 focal lengths (0.7: held close, large
   face; 3: small face), 10 fps, through mp4v: both parallaxes between the first and last
   frame, and the yaw / pitch the landmarks read into the tilt.
3. Still pictures: landmark shape motion of the photos as 3 s videos vs the clip's segments.
4. Every test video through check_liveness: results, the values behind them, timings;
   and a 15 s video for the bound on the work.
"""

from __future__ import annotations

import argparse
import glob
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test videos' builders

import liveness_videos as V  # noqa: E402
from helpers import SHARED_FACES as SHARED  # noqa: E402
from matcher.faces import liveness as L  # noqa: E402
# The yaw proxy's units per degree of solvePnP yaw on real turns (analyse_clip.py: 2.62,
# correlation 0.991), to express the proxy in degrees.
PROXY_PER_DEGREE = 2.62


def reference(path: Path) -> np.ndarray:
    """The enrolled embedding of a reference photo, as enrollment makes it."""
    from matcher.faces import DlibSpec, process_engine

    faces = process_engine(DlibSpec()).faces(V.load_rgb(path))
    return np.array([max(faces, key=lambda f: f.box.width).embedding])


def gray(rgb):
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def fit(rgb, side=640):
    """Longest side to ``side`` (up or down), even sizes for the video writer."""
    import cv2

    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    size = (round(width * scale) // 2 * 2, round(height * scale) // 2 * 2)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)


def stats(name, values):
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if not len(v):
        print(f"  {name:34s} n=0")
        return
    print(f"  {name:34s} n={len(v):4d}  min {v.min():.4f}  p5 {np.percentile(v, 5):.4f}  "
          f"median {np.median(v):.4f}  p95 {np.percentile(v, 95):.4f}  max {v.max():.4f}")


def real_pairs(config):
    frames, fps = V.clip_frames()
    rows = []
    for phase in range(3):  # the three ways of sampling 30 fps at 10 fps
        picked = [(i, f) for i, f in enumerate(frames) if 2.74 <= i / fps < 7.03 and i % 3 == phase]
        observations = L.observe_faces([L.VideoFrame(i / fps, f) for i, f in picked])
        by_index = {round(o.time_s * fps): o for o in observations}
        for front in [o for o in observations if abs(o.yaw) < 4]:
            for turned in observations:
                dt = turned.time_s - front.time_s
                dyaw, dpitch = turned.yaw - front.yaw, turned.pitch - front.pitch
                if dt == 0 or abs(dt) > 1.5 or (abs(turned.yaw) < config.turn_yaw_deg and abs(dpitch) < 10):
                    continue
                i0, i1 = round(front.time_s * fps), round(turned.time_s * fps)
                step = 3 if i1 > i0 else -3
                if any(i not in by_index for i in range(i0, i1 + step, step)):
                    continue  # a frame without a face on the way
                grays = [gray(frames[i]) for i in range(i0, i1 + step, step)]
                rows.append(dict(dyaw=dyaw, dpitch=dpitch, dt=dt, w=L.face_width(front.landmarks),
                                 landmark=L.landmark_parallax(front.landmarks, turned.landmarks),
                                 texture=L.track_texture(grays, front.landmarks),
                                 pair=(round(front.time_s, 2), round(turned.time_s, 2))))
    return rows


def flat_cases(photos, distances, tilts, tmp):
    rows = []
    for photo in photos:
        rgb = fit(V.load_rgb(Path(photo)))
        for distance in distances:
            for yaw, pitch in tilts:
                frames = [V.tilt_plane(rgb, yaw * k / 6, pitch * k / 6, distance) for k in range(7)]
                V.write_video(tmp / "flat.mp4", "mp4v", frames, 10)
                back, _ = V.clip_frames(tmp / "flat.mp4")
                observations = L.observe_faces([L.VideoFrame(0.0, back[0]), L.VideoFrame(0.6, back[6])])
                if len(observations) < 2:
                    continue
                front, turned = observations
                proxy_change = L.yaw_proxy(turned.landmarks) - L.yaw_proxy(front.landmarks)
                rows.append(dict(case=(Path(photo).name, distance, yaw, pitch), dyaw=turned.yaw - front.yaw,
                                 dproxy=proxy_change / PROXY_PER_DEGREE,
                                 dpitch=turned.pitch - front.pitch, w=min(L.face_width(front.landmarks),
                                                                          L.face_width(turned.landmarks)),
                                 inside=L._inside(front.landmarks, back[0].shape, 0.05)
                                 and L._inside(turned.landmarks, back[6].shape, 0.05),
                                 landmark=L.landmark_parallax(front.landmarks, turned.landmarks),
                                 texture=L.track_texture([gray(f) for f in back], front.landmarks)))
    return rows


def off_plane(row):
    return None if row["texture"] is None else row["texture"].homography_p80


def ratio(row):
    return None if row["texture"] is None else row["texture"].ratio


def shown_3d(row, config):
    return row["texture"] is not None and L.is_3d(L.TurnEvent("", 0, 0, 0, 0, texture=row["texture"]), config)


def describe_rows(rows):
    stats("  landmark parallax (reported only)", [r["landmark"] for r in rows])
    stats("  texture off-plane p80", [off_plane(r) for r in rows])
    stats("  texture plane/rigid ratio", [ratio(r) for r in rows])
    stats("  texture off-plane median", [None if r["texture"] is None else r["texture"].homography_median
                                          for r in rows])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer flat photos")
    args = parser.parse_args()
    config = L.LivenessConfig()
    tmp = Path(tempfile.mkdtemp(prefix="liveness-measure-"))
    started = time.perf_counter()

    print("== 1. Real head turns (Hamilton clip), frontal frame -> turned frame")
    real = real_pairs(config)
    print(f"  {len(real)} pairs; face width {min(r['w'] for r in real):.0f}-{max(r['w'] for r in real):.0f} px; "
          f"texture not followed in {sum(r['texture'] is None for r in real)}")
    describe_rows(real)
    for low, high in ((8, 12), (12, 20), (20, 40)):
        part = [r for r in real if low <= max(abs(r["dyaw"]), abs(r["dpitch"])) < high]
        print(f"  turns of {low}-{high} deg: {len(part)} pairs, shown 3-D: {sum(shown_3d(r, config) for r in part)}")
        describe_rows(part)
    print(f"  real pairs shown 3-D (off-plane >= {config.min_off_plane}, ratio >= "
          f"{config.min_plane_to_rigid_ratio}): {sum(shown_3d(r, config) for r in real)}/{len(real)}")

    print("\n== 2. Flat pictures turned as a plane")
    photos = [sorted(glob.glob(str(SHARED / "lfw10" / name / "*.jpg")))[k]
              for name in sorted(p.name for p in (SHARED / "lfw10").iterdir() if p.is_dir())
              for k in ((0,) if args.quick else (0, 1, 2))]
    photos += [str(V.EXAMPLES / n) for n in ("obama.jpg", "obama2.jpg", "biden.jpg", "lin-manuel-miranda.png",
                                             "alex-lacamoire.png")]
    tilts = [(y, 0) for y in (-45, -30, 30, 45)] + [(0, p) for p in (-35, -25, 25, 35)] + [(-30, 20), (30, -20)]
    flat = flat_cases(photos, (0.7, 1.0, 2.0, 3.0), tilts, tmp)
    usable = [r for r in flat if r["w"] >= config.min_face_px and r["inside"]]
    turning = [r for r in usable if abs(r["dyaw"]) >= config.turn_yaw_deg or abs(r["dpitch"]) >= config.turn_pitch_deg]
    print(f"  {len(flat)} cases from {len(photos)} photos; {len(usable)} with the face >= {config.min_face_px:.0f} px "
          f"and inside the frame; {len(turning)} of those read as a turn by the landmarks")
    stats("solvePnP yaw read into the tilt, deg", [abs(r["dyaw"]) for r in flat])
    stats("yaw proxy read into the tilt, deg", [abs(r["dproxy"]) for r in flat])
    for tilt in (30, 45):
        part = [r for r in flat if abs(r["case"][2]) == tilt and r["case"][3] == 0]
        stats(f"  plane turned {tilt} deg: solvePnP", [abs(r["dyaw"]) for r in part])
        stats(f"  plane turned {tilt} deg: proxy", [abs(r["dproxy"]) for r in part])
    for name, rows in (("all", flat), ("usable", usable), ("usable, read as a turn", turning)):
        print(f"  {name}:")
        describe_rows(rows)
    fooled = [r for r in usable if shown_3d(r, config)]
    print(f"  usable flat cases shown 3-D: {len(fooled)}/{len(usable)} "
          f"(of those read as a turn: {sum(r in turning for r in fooled)}/{len(turning)})")
    for r in fooled:
        print(f"    {r['case']} w={r['w']:.0f} off-plane={off_plane(r):.4f} ratio={ratio(r):.2f} "
              f"landmark={r['landmark']:.4f} dyaw={r['dyaw']:+.1f} dpitch={r['dpitch']:+.1f}")
    for label, key in (("off-plane p80", off_plane), ("ratio", ratio), ("landmark parallax", lambda r: r["landmark"])):
        print(f"  highest {label} of usable flat cases:")
        for r in sorted(usable, key=lambda r: -(key(r) or 0))[:5]:
            print(f"    {r['case']} w={r['w']:.0f} off-plane={off_plane(r) or 0:.4f} ratio={ratio(r) or 0:.2f} "
                  f"landmark={r['landmark']:.4f}")
    for low, high in ((70, 100), (100, 150), (150, 1000)):
        part = [r for r in usable if low <= r["w"] < high]
        print(f"  usable flat, face {low}-{high} px: {len(part)}, shown 3-D: {sum(shown_3d(r, config) for r in part)}")
        describe_rows(part)

    print("\n== 3. Still pictures: landmark shape motion")
    still = []
    for photo in photos[:: 3 if not args.quick else 1] + [str(V.MIRANDA)]:
        path = V.still_video(tmp / "still.mp4", Path(photo), seconds=1.0)
        observations = L.observe_faces(L.read_video(path, config).frames)
        if len(observations) >= 2:
            still.append(L.shape_motion([o.landmarks for o in observations]))
    stats("still photos", still)
    frames, fps = V.clip_frames()
    moving = []
    for name in V.SEGMENTS:
        played = V.segment(frames, fps, name)
        observations = L.observe_faces([L.VideoFrame(i / fps, f) for i, f in enumerate(played)][::3])
        moving.append(L.shape_motion([o.landmarks for o in observations]))
    stats("clip segments", moving)

    print("\n== 4. The test videos through check_liveness (times on this machine)")
    miranda, obama = reference(V.MIRANDA), reference(V.OBAMA)
    obama2, lacamoire = reference(V.EXAMPLES / "obama2.jpg"), reference(V.LACAMOIRE)
    cases = [
        ("left,right in order", V.segments_video(tmp / "lr.mp4", ["left", "right"]), ["left", "right"], miranda),
        ("right,left,right in order", V.segments_video(tmp / "rlr.mp4", ["right", "left", "right_b"]),
         ["right", "left", "right"], miranda),
        ("left_b,right_b in order", V.segments_video(tmp / "lbrb.mp4", ["left_b", "right_b"]), ["left", "right"],
         miranda),
        ("wrong order", tmp / "lr.mp4", ["right", "left"], miranda),
        ("still photo 3 s", V.still_video(tmp / "still3.mp4"), ["left", "right"], miranda),
        ("flat photo 30 deg left,right", V.flat_photo_video(tmp / "f1.mp4", ["left", "right"]), ["left", "right"],
         miranda),
        ("flat photo 30 deg right,left,up", V.flat_photo_video(tmp / "f2.mp4", ["right", "left", "up"]),
         ["right", "left", "up"], miranda),
        ("flat photo 25 deg up,down", V.flat_photo_video(tmp / "f5.mp4", ["up", "down"]), ["up", "down"], miranda),
        ("flat Obama 45 deg", V.flat_photo_video(tmp / "f3.mp4", ["left", "right"], photo=V.OBAMA, degrees=45),
         ["left", "right"], obama2),
        ("flat Obama 45 deg, held close", V.flat_photo_video(tmp / "f4.mp4", ["left", "right"], photo=V.OBAMA,
                                                             degrees=45, distance=0.7), ["left", "right"], obama2),
        ("other person: Obama", tmp / "lr.mp4", ["left", "right"], obama),
        ("other person: Lacamoire", tmp / "lr.mp4", ["left", "right"], lacamoire),
    ]
    for name, path, prompts, enrolled in cases:
        t0 = time.perf_counter()
        result = L.check_liveness(path, prompts, enrolled, config)
        seconds = time.perf_counter() - t0
        m = result.measurements
        print(f"- {name}: passed={result.passed} in {seconds:.2f} s ({m.get('frames_checked')} frames, "
              f"{m.get('embedded_frames')} embedded)")
        print(f"    distance {m.get('distance')} frames {m.get('frame_distances')} "
              f"shape_motion {m.get('shape_motion')} seen {m.get('turns_seen')}")
        for turn in m.get("turns", []):
            print(f"    turn {turn}")
        for problem in result.problems:
            print(f"    problem: {problem}")

    # The bound on the work: a 15 s video (the clip's shot, back and forth), 10 fps.
    long_frames = []
    shot = V.cut(frames, fps, 2.74, 7.03)
    while len(long_frames) < 15 * fps:
        long_frames += shot + shot[::-1]
    path = V.write_video(tmp / "long.mp4", "mp4v", long_frames[: int(15 * fps) - 2], fps)
    t0 = time.perf_counter()
    result = L.check_liveness(path, ["right", "left", "right"], miranda, config)
    print(f"- 15 s video: {time.perf_counter() - t0:.2f} s ({result.measurements['frames_checked']} frames, "
          f"{result.measurements['embedded_frames']} embedded), seen {result.measurements['turns_seen']}")
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
