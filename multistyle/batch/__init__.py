"""``multistyle batch``: many jobs, on this machine or on a Ray cluster, resumable.

A batch is a list of :class:`BatchJob` (a content, one or more styles, the
backend and the settings).  Each job's output name comes from what it
computes: its inputs' bytes, its backend, weights, size and settings, hashed
(:func:`job_key`), behind a readable stem.  The image and a JSON sidecar are
written atomically by the parent process, image first, so a job counts as
done only once both exist and the sidecar names the image's checksum; a
rerun skips such jobs, so an interrupted batch resumes where it stopped.

Two engines run the jobs:

- ``local``: a pool of worker processes (``spawn``), each keeping its
  backends and weights across jobs.  The parent knows which job each worker
  holds, so a worker that dies (killed, out of memory) costs exactly that job
  one attempt: it is retried on a fresh worker up to ``retries`` times.
- ``ray``: each job a Ray task; weights (and input images) go into Ray's
  object store once.  Ray itself retries a task whose worker process or node
  died (``max_retries``).

A job that fails because of its input (an unreadable image, a loss that
became NaN) is not retried: it is recorded as failed, with its one-line
reason, and the batch goes on.  This package imports no framework, and Ray
only when the Ray engine is used.

The rooms: :mod:`.jobs` (what a job is, where jobs come from), :mod:`.store`
(keys, names, sidecars, results files), :mod:`.worker` (one job in one
process), :mod:`.local` and :mod:`.cluster` (the two engines), :mod:`.runner`
(the batch from start to end).
"""

from .cluster import ray_connection, ray_init
from .jobs import IMAGE_EXTENSIONS, BatchJob, expand_images, grid, read_jobs_file
from .local import gpu_count, usable_cores, worker_plan
from .runner import ENGINES, run_batch
from .store import RESULTS_COLUMNS, file_sha256, finished_sidecar, job_key, output_name, style_label
from .worker import execute

__all__ = ["ENGINES", "IMAGE_EXTENSIONS", "RESULTS_COLUMNS", "BatchJob", "execute", "expand_images", "file_sha256",
           "finished_sidecar", "gpu_count", "grid", "job_key", "output_name", "ray_connection", "ray_init",
           "read_jobs_file", "run_batch", "style_label", "usable_cores", "worker_plan"]
