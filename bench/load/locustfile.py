"""The viewers of `make bench-load` (run by bench/load.py, locust headless).

Each simulated viewer is one signed-in user (its own session cookie from
BENCH_SESSIONS_FILE) with its own cookie jar, doing what the player does:
the playback JSON (which sets the viewer cookie the signed URLs are bound
to, and the CSRF cookie), the master playlist, one video rung's media
playlist (and the audio one when the master names it), the init segments,
then one segment per segment duration (real-time pace, BENCH_PACE scales it),
a watch beacon every ~10 s of playback, and from the start again at the end.

Every request's time and outcome is kept by name (json, master, media,
segment, beacon) and written to BENCH_RESULTS as JSON when the run stops;
bench/load.py turns it into percentiles. Timings are locust's response_time:
for the Python answers (bodies of a few hundred bytes) that is the time to
the first byte plus a single read.
"""

import itertools
import json
import os
import re
import secrets
import time
from collections import defaultdict
from urllib.parse import urljoin

import gevent
from locust import FastHttpUser, constant, events, task
from requests.cookies import create_cookie

SESSIONS = open(os.environ["BENCH_SESSIONS_FILE"]).read().split()
PAGE = os.environ["BENCH_PAGE"]
VIDEO = os.environ["BENCH_VIDEO"]
PACE = float(os.environ.get("BENCH_PACE", "1"))
BEACON_EVERY = 10.0  # when the playback JSON does not say
_next_session = itertools.count()

SAMPLES = defaultdict(list)
FAILURES = defaultdict(list)
STATS = defaultdict(int)


@events.request.add_listener
def _record(request_type, name, response_time, response_length, exception=None, response=None, **_):
    SAMPLES[name].append(response_time)
    if exception is not None:
        FAILURES[name].append(f"{type(exception).__name__}: {exception}"[:200])


@events.quitting.add_listener
def _write(environment, **_):
    with open(os.environ["BENCH_RESULTS"], "w") as handle:
        json.dump({"samples": SAMPLES, "failures": FAILURES, "stats": STATS}, handle)


_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def _attrs(line):
    return {k: v.strip('"') for k, v in _ATTR.findall(line.split(":", 1)[1])}


def parse_media_playlist(text, base):
    """(init (url, range) or None, [(url, range header or None, seconds)])."""
    init, segments, seconds, byterange, offset = None, [], 0.0, None, 0
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-MAP:"):
            attrs = _attrs(line)
            rng = None
            if "BYTERANGE" in attrs:
                length, _, start = attrs["BYTERANGE"].partition("@")
                rng = f"bytes={int(start or 0)}-{int(start or 0) + int(length) - 1}"
            init = (urljoin(base, attrs["URI"]), rng)
        elif line.startswith("#EXTINF:"):
            seconds = float(line[8:].split(",")[0])
        elif line.startswith("#EXT-X-BYTERANGE:"):
            length, _, start = line[17:].partition("@")
            start = int(start) if start else offset
            byterange = f"bytes={start}-{start + int(length) - 1}"
            offset = start + int(length)
        elif line and not line.startswith("#"):
            segments.append((urljoin(base, line), byterange, seconds))
            byterange = None
    return init, segments


class Viewer(FastHttpUser):
    wait_time = constant(0)
    connection_timeout = 10
    network_timeout = 30

    def on_start(self):
        session = SESSIONS[next(_next_session) % len(SESSIONS)]
        self.client.cookiejar.set_cookie(create_cookie("sessionid", session, domain="127.0.0.1", path="/"))

    def _get(self, url, name, headers=None):
        with self.client.get(url, name=name, headers=headers or {}, catch_response=True) as response:
            if response.status_code not in (200, 206):
                response.failure(f"status {response.status_code}")
                return None
            return response

    @task
    def watch(self):
        playback = f"/playback/{PAGE}/{VIDEO}/"
        response = self._get(playback, "json")
        if response is None:
            gevent.sleep(1)
            return
        info = response.json()
        master_url = next(s["src"] for s in info["sources"] if "mpegurl" in s["type"].lower())
        master = self._get(master_url, "master")
        if master is None:
            return
        lines = master.text.splitlines()
        variant = next(lines[i + 1] for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF"))
        playlists = [urljoin(master_url, variant)]
        audio = next((_attrs(line) for line in lines
                      if line.startswith("#EXT-X-MEDIA:") and "TYPE=AUDIO" in line and "URI=" in line), None)
        if audio:
            playlists.append(urljoin(master_url, audio["URI"]))
        tracks = []
        for url in playlists:
            media = self._get(url, "media")
            if media is None:
                return
            init, segments = parse_media_playlist(media.text, url)
            if init:
                if self._get(init[0], "segment", {"Range": init[1]} if init[1] else None) is None:
                    return
            tracks.append(segments)
        STATS["playbacks"] += 1
        # The beacon's URL and CSRF token, as the player gets them (media_access.views.analytics.beacon_info).
        beacon = info.get("analytics") or info.get("beacon")
        if not (isinstance(beacon, dict) and beacon.get("url")):
            beacon = None
        every = float(beacon.get("every") or BEACON_EVERY) if beacon else BEACON_EVERY
        playback_id = secrets.token_hex(8)
        started = time.monotonic()
        played = 0.0
        last_beacon = started
        for index, (url, rng, seconds) in enumerate(tracks[0]):
            # The video segment and the audio segment of the same time, as hls.js does.
            for track in tracks:
                if index < len(track):
                    seg_url, seg_range, _ = track[index]
                    if self._get(seg_url, "segment", {"Range": seg_range} if seg_range else None) is None:
                        return
            played += seconds
            ahead = started + played * PACE - time.monotonic()
            if ahead > 0:
                gevent.sleep(ahead)
            if beacon and time.monotonic() - last_beacon >= every * PACE:
                self._beacon(beacon, playback_id, played, info.get("duration"))
                last_beacon = time.monotonic()
        if beacon:
            self._beacon(beacon, playback_id, played, info.get("duration"))

    def _beacon(self, beacon, playback_id, played, duration):
        token = beacon.get("csrf_token", "")
        body = {"session": playback_id, "ranges": [[0, round(played, 3)]], "duration": duration or played,
                "csrf": token}
        with self.client.post(beacon["url"], data=json.dumps(body), name="beacon", catch_response=True,
                              headers={"Content-Type": "application/json", "X-CSRFToken": token}) as response:
            if response.status_code not in (200, 202, 204):
                response.failure(f"status {response.status_code}")
        STATS["beacons"] += 1
