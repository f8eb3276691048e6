"""Build and run the app image on a Docker engine of our own, on a machine with no registry.

- `engine`: a private `dockerd` (own socket, data and exec roots in one temporary directory) that
  is stopped, unmounted and removed again, even when what used it failed;
- `debian_base`: a Python base image made from the Debian archive (debootstrap), for machines that
  cannot pull the official one;
- `app_image`: builds `app/Dockerfile` and measures it;
- `ecs_run`: `docker run` arguments that start a container the way its ECS container definition says;
- `lock`: reads the image's dependency lock (`app/requirements.lock`, written by `scripts/lock-app` with uv);
- `prerequisites`: why images cannot be built on this machine, if they cannot.

The image tests (tests/image) and the image benchmark (bench/image.py) use it.
"""
