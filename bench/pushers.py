#!/usr/bin/env python3
"""Concurrent pushers against a running registry, for the by-hand measurements in
bench/README.md ("Pushes to many namespaces on PostgreSQL").

    bench/pushers.py PORT CLIENTS IMAGES SPREAD

CLIENTS threads, each on one keep-alive connection to 127.0.0.1:PORT, push IMAGES
images each: a shared config once, then for each image a 20-byte layer (a monolithic
`POST /blobs/uploads/?digest=`) and its manifest by a new tag. SPREAD says where:
`ns` (client i pushes to ns{i}/app: one namespace each), `repo` (ns/app{i}: one
namespace, a repository each) or `one` (all to ns/app). Prints images per second.
Standard library only, so that it runs wherever python3 does.
"""
import hashlib
import http.client
import json
import os
import sys
import threading
import time

CONFIG = b'{"architecture":"amd64","os":"linux"}'


def digest(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def pusher(port, i, images, spread, took, errors):
    repo = {"ns": f"ns{i}/app", "repo": f"ns/app{i}", "one": "ns/app"}[spread]
    c = http.client.HTTPConnection("127.0.0.1", port)

    def request(method, path, body, content_type, want):
        c.request(method, path, body=body, headers={"Content-Type": content_type})
        r = c.getresponse()
        r.read()
        if r.status != want:
            raise RuntimeError(f"{method} {path}: HTTP {r.status}")

    def blob(b):
        d = digest(b)
        request("POST", f"/v2/{repo}/blobs/uploads/?digest={d}", b,
                "application/octet-stream", 201)
        return d

    try:
        config = blob(CONFIG)
        start = time.time()
        for k in range(images):
            layer = os.urandom(20)
            manifest = json.dumps({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config, "size": len(CONFIG)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": blob(layer), "size": len(layer)}],
            }).encode()
            request("PUT", f"/v2/{repo}/manifests/t{k}", manifest,
                    "application/vnd.oci.image.manifest.v1+json", 201)
        took[i] = time.time() - start
    except Exception as e:  # reported below, with a non-zero exit
        errors.append(f"client {i}: {e}")


def main():
    if len(sys.argv) != 5 or sys.argv[4] not in ("ns", "repo", "one"):
        sys.exit(__doc__)
    port, clients, images, spread = (int(sys.argv[1]), int(sys.argv[2]),
                                     int(sys.argv[3]), sys.argv[4])
    took, errors = {}, []
    threads = [threading.Thread(target=pusher, args=(port, i, images, spread, took, errors))
               for i in range(clients)]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - start
    if errors:
        sys.exit("\n".join(errors))
    print(f"{clients} clients x {images} images ({spread}): "
          f"{clients * images / elapsed:.0f} images/s in {elapsed:.2f}s")


if __name__ == "__main__":
    main()
