"""The list of the mutation check (``tests/support/mutation.py``): the README's promises, one deliberate bug each.

Each mutation replaces ``find`` (which must occur exactly once in ``path``) by
``replace`` and names the tests that must then fail.  When the code a
mutation names moves or changes, the check stops with the mutation's name:
move the mutation with the code, keeping the bug it plants.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple


class Mutation(NamedTuple):
    name: str
    promise: str  # what the README promises, which this bug breaks
    path: str  # relative to the repository root
    find: str
    replace: str
    tests: Tuple[str, ...]


T_OPT = "tests/core/test_optimizers.py"
T_ADAM = "tests/backends/test_conformance.py::test_adam_matches_reference_with_step_decay_and_tiny_gradients"
T_KEY = "tests/cli/test_batch.py::test_job_key_changes_with_each_thing_the_job_computes"
T_KEY_SAME = "tests/cli/test_batch.py::test_job_key_ignores_the_device_and_a_moved_folder"
T_RERUN = "tests/cli/test_batch.py::test_a_rerun_after_one_change_runs_that_job_again"
T_ORACLE = "tests/core/test_controls.py::test_each_control_against_the_numpy_oracle"


def _control(name: str) -> str:
    """The oracle test of one control, on torch (the mutation check's env): the run stops at the control the
    bug breaks instead of going through every control before it (a fifth of the check's time, measured)."""
    return f"{T_ORACLE}[torch-{name}]"

T_GPU = "tests/backends/test_gpu_paths.py"
T_SERVE = "tests/cli/test_serve.py"
T_HEAP = "tests/core/test_heap.py"
T_INT = "tests/core/test_interrupts.py"
T_RELEASE = "tests/docs/test_release.py"
T_NET = "tests/nets/test_style_network_backends.py::test_the_forward_pass_matches_numpy_at_an_odd_size[torch]"
T_TRAIN = "tests/nets/test_train_cli.py"
T_LOSSES = "tests/backends/test_conformance.py::test_mean_std_and_w2_losses_match_the_float64_oracle_in_value_and_gradient"

_KEY_LINE = ('"backend": job.backend, "weights": _weights_identity(job.weights), "size": _size_text(job.size),\n'
             '                    "settings": settings_dict(job.settings.resolved()), "version": 1}')

MUTATIONS: Tuple[Mutation, ...] = (
    # -- optimizer semantics ------------------------------------------------------------------------------
    Mutation("optimizer-rmsprop-eps-in-root", "RMSprop is torch's: epsilon outside the square root",
             "multistyle/optim.py", "(g / (self.B.sqrt(self.v) + self.eps))", "(g / self.B.sqrt(self.v + self.eps))",
             (f"{T_OPT}::test_rmsprop_matches_torch_semantics_with_gradients_down_to_1e_9",)),
    Mutation("optimizer-core-adam-eps-in-root", "the core's Adam (for a framework without one) is torch's",
             "multistyle/optim.py", "denom = self.B.sqrt(self.v) / math.sqrt(1.0 - self.beta2 ** self.t) + self.eps",
             "denom = self.B.sqrt(self.v / (1.0 - self.beta2 ** self.t) + self.eps)",
             (f"{T_OPT}::test_the_core_adam_is_torchs_with_tiny_gradients_and_step_decay",)),
    Mutation("optimizer-lbfgs-unscaled-first", "L-BFGS's first step is min(1, 1/|g|_1) * lr, as torch's",
             "multistyle/optim.py",
             "self.t = min(1.0, 1.0 / B.item(B.sum(B.abs(g)))) * self.lr if self.n_iter == 1 else self.lr",
             "self.t = self.lr", (T_OPT,)),
    Mutation("optimizer-step-decay-smooth", "the rate decays in steps (torch's StepLR), every N epochs",
             "multistyle/optim.py", "return lr * decay ** (epoch // every)", "return lr * decay ** (epoch / every)",
             (T_OPT,)),
    Mutation("optimizer-torch-lbfgs-no-search-budget", "L-BFGS's line search gets its 25 evaluations on torch",
             "backends/torch_backend.py", "max_iter=1, max_eval=1 + 25,", "max_iter=1,",
             (f"{T_OPT}::test_lbfgs_with_line_search_decreases_every_step_and_converges",)),
    Mutation("optimizer-torch-adam-epsilon", "Adam is epsilon 1e-8 after the bias correction on every backend",
             "backends/torch_backend.py", "torch.optim.Adam([x], lr=lr)", "torch.optim.Adam([x], lr=lr, eps=1e-4)",
             (T_ADAM,)),
    # -- the safe reader, atomic writes, fail-before-work -------------------------------------------------------
    Mutation("safe-reader-allowlist-off", "a weights pickle that names code is refused before anything runs",
             "multistyle/safe_pickle.py", "if (module, name) not in ALLOWED_GLOBALS:", "if False:",
             ("tests/security/test_untrusted_files.py::test_a_pickle_that_would_run_code_is_refused_before_anything_runs",)),
    Mutation("atomic-write-in-place", "outputs are written atomically: a failed write leaves nothing",
             "multistyle/images.py", 'with atomic_path(path) as temp, open(temp, "wb") as handle:',
             'with open(path, "wb") as handle:',
             ("tests/core/test_images.py::test_atomic_save_leaves_nothing_on_failure",)),
    Mutation("atomic-write-temp-left", "an interrupted write leaves no temporary file",
             "multistyle/images.py", "                os.unlink(temp)", "                pass",
             ("tests/cli/test_outputs.py::test_ctrl_c_right_after_the_temporary_file_is_created_leaves_nothing",)),
    Mutation("fail-before-work-log", "every output location is checked before the work starts",
             "multistyle/cli/run.py", '        images.check_writable(args.log, "--log")', "        pass",
             ("tests/cli/test_outputs.py::test_every_output_location_is_checked_before_the_work",)),
    Mutation("fail-before-work-output", "the output's folder and format are checked before the work starts",
             "multistyle/cli/run.py", "    images.check_output_path(args.output)\n", "",
             ("tests/cli/test_outputs.py::test_every_output_location_is_checked_before_the_work",)),
    # -- the memory refusal -----------------------------------------------------------------------------------
    Mutation("memory-refusal-off", "--max-memory refuses a job predicted not to fit, naming a size that fits",
             "multistyle/memory.py", "if limit is None or prediction.peak <= limit:", "if True:",
             ("tests/cli/test_memory_plan.py::test_max_memory_refuses_a_job_and_names_the_largest_size_that_fits",)),
    Mutation("memory-refusal-after-weights", "--max-memory refuses before the weights are loaded",
             "multistyle/transfer.py", "    memory.check_limit(max_memory, predicted, B.name,",
             "    (lambda *unused: None)(max_memory, predicted, B.name,",
             ("tests/cli/test_memory_plan.py::test_max_memory_is_checked_before_weights_load",)),
    # -- the batch key and resume -------------------------------------------------------------------------------
    Mutation("batch-key-names-not-bytes", "a batch job is identified by its inputs' bytes, not their names",
             "multistyle/batch/store.py",
             '{"content": file_sha256(job.content), "style": [file_sha256(path) for path in job.style],',
             '{"content": os.path.basename(job.content), "style": [os.path.basename(p) for p in job.style],',
             (T_KEY, T_RERUN)),
    Mutation("batch-key-no-weights", "a changed weights file is a new batch job", "multistyle/batch/store.py",
             _KEY_LINE, _KEY_LINE.replace('"weights": _weights_identity(job.weights), ', ""), (T_KEY, T_RERUN)),
    Mutation("batch-key-weights-by-path", "a weights file is identified by its bytes", "multistyle/batch/store.py",
             'return "file:" + file_sha256(str(value))', 'return "file:" + os.path.basename(str(value))',
             (T_KEY, T_RERUN)),
    Mutation("batch-key-no-size", "a changed size is a new batch job", "multistyle/batch/store.py",
             _KEY_LINE, _KEY_LINE.replace('"size": _size_text(job.size),', ""), (T_KEY, T_RERUN)),
    Mutation("batch-key-no-settings", "a changed setting is a new batch job", "multistyle/batch/store.py",
             _KEY_LINE, _KEY_LINE.replace('"settings": settings_dict(job.settings.resolved()), ', ""), (T_KEY,)),
    Mutation("batch-key-no-backend", "the same job on another backend is another job", "multistyle/batch/store.py",
             _KEY_LINE, _KEY_LINE.replace('"backend": job.backend, ', ""), (T_KEY,)),
    Mutation("batch-key-counts-device", "the device is not part of a job: a batch moved to a GPU skips what is done",
             "multistyle/batch/store.py", _KEY_LINE, _KEY_LINE.replace('"version": 1}', '"version": 1, "device": job.device}'),
             (T_KEY_SAME,)),
    Mutation("resume-without-checksum", "a rerun redoes a job whose image was replaced", "multistyle/batch/store.py",
             'data.get("key") == key and data.get("output", {}).get("sha256") == file_sha256(image)',
             'data.get("key") == key',
             ("tests/cli/test_batch.py::test_rerun_skips_every_done_job_and_runs_only_what_is_missing",)),
    Mutation("interrupt-forgets-a-written-job", "Ctrl-C keeps every job whose result is on disk as done",
             "multistyle/batch/runner.py",
             "entry.sidecar = finished_sidecar(output, entry.name, entry.key)\n                if entry.sidecar is not None:",
             "entry.sidecar = None\n                if entry.sidecar is not None:",
             ("tests/cli/test_batch.py::test_an_interrupt_right_after_a_job_is_written_keeps_that_job_done",)),
    # -- the controls -------------------------------------------------------------------------------------------
    Mutation("control-blend-not-normalised", "--style-blend weights are normalised to sum 1",
             "multistyle/settings.py", "return tuple(w / total for w in values)", "return tuple(values)", (_control("blend 3,1"),)),
    Mutation("control-style-scale-of-style", "--style-scale S sizes the style to S x the working long edge",
             "multistyle/transfer.py", "max(1, round(settings.style_scale * max(shape)))",
             "max(1, round(settings.style_scale * max(image.size)))", (_control("style-scale 0.75"),)),
    Mutation("control-luminance-bt709", "--preserve-color luminance uses BT.601 luminance",
             "multistyle/color.py", "[[0.299, 0.587, 0.114],", "[[0.2126, 0.7152, 0.0722],", (_control("luminance"),)),
    Mutation("control-histogram-style-untouched", "--preserve-color histogram moves the style's colours",
             "multistyle/transfer.py",
             '    pixels = images.resize_pixels(image, size)\n    if settings.preserve_color == "histogram":',
             "    pixels = images.resize_pixels(image, size)\n    if False:", (_control("histogram"),)),
    Mutation("control-init-file-ignored", "--init FILE starts from that file", "multistyle/transfer.py",
             'if settings.init == "content":', 'if settings.init not in ("noise", "style"):', (_control("init FILE"),)),
    Mutation("control-init-colors-unmatched", "--init content-in-style-colors gives the content the style's colours",
             "multistyle/transfer.py",
             "recoloured = color.match_color(content_pixels, style_pixels(style, size, settings, content_pixels))",
             "recoloured = content_pixels", (_control("init content-in-style-colors"),)),
    Mutation("control-layer-weight-ignored", "--style-layers NAME:W weights that layer's term",
             "multistyle/objective.py", "return term if weight == 1 else weight * term", "return term", (_control("layer weights"),)),
    Mutation("control-pooling-always-max", "--pooling avg averages", "backends/torch_backend.py",
             '(nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(kernel_size=2, stride=2)',
             "nn.MaxPool2d(kernel_size=2, stride=2)", (_control("avg pooling"),)),
    # -- the oracle's layers --------------------------------------------------------------------------------------
    # conv5_4 -> pool -> ReLU for conv5_4 -> ReLU -> pool: names, count and conv indices stay (pool5's output
    # too: max-pool and ReLU commute), backends and oracle agree, and relu5_4 is no longer VGG-19's.
    Mutation("oracle-layers-pool-before-relu5_4", "the network is VGG-19, as each framework builds it, to pool5",
             "multistyle/vgg.py", "LAYERS: List[Layer] = _build_layers()",
             'LAYERS: List[Layer] = _build_layers()[:35] + [Layer(35, "relu5_4", "pool", 512, 512), '
             'Layer(36, "pool5", "relu", 512, 512)]',
             ("tests/backends/test_conformance.py::test_the_layer_table_is_the_frameworks_own_vgg19",)),
    Mutation("gradient-wrong-on-one-row", "the image's gradient is the loss's at every pixel",
             "backends/torch_backend.py", "        (grad,) = torch.autograd.grad(loss, x)\n",
             "        (grad,) = torch.autograd.grad(loss, x)\n        grad[:, :, 5:6, :] = 0\n",
             ("tests/backends/test_conformance.py::test_loss_and_gradient_match_the_oracle",)),
    Mutation("gram-gradient-through-one-factor", "a Gram matrix differentiates as X·Xᵀ, through both factors",
             "multistyle/backend/protocol.py", "return self.matmul(features, self.transpose(features))",
             "return self.matmul(features, self.transpose(features).detach())",
             ("tests/backends/test_conformance.py::test_gram_gradient_matches_the_analytic_one",)),
    Mutation("gram-torch-half-gradient", "torch's one-product Gram gradient is (G' + G'ᵀ)·X",
             "backends/torch_backend.py", "return (grad + grad.T) @ x", "return grad @ x",
             ("tests/backends/test_conformance.py::test_gram_gradient_matches_the_analytic_one",)),
    Mutation("gram-channels-last-read-as-nchw", "a channels-last feature map has the Gram matrix of its NCHW form",
             "multistyle/losses.py", "channels = shape[-1] if channels_last else shape[1]", "channels = shape[1]",
             ("tests/backends/test_conformance.py::test_a_channels_last_gram_matches_the_nchw_one_in_value_and_gradient",)),
    Mutation("gram-columns-through-one-factor", "a channels-last Gram differentiates through both factors",
             "multistyle/backend/protocol.py", "return self.matmul(self.transpose(features), features)",
             "return self.matmul(self.transpose(features).detach(), features)",
             ("tests/backends/test_conformance.py::test_a_channels_last_gram_matches_the_nchw_one_in_value_and_gradient",)),
    # -- the stop rules and the multi-scale plan -------------------------------------------------------------------
    Mutation("stop-until-loss-ignored", "--until-loss stops the run when the loss reaches it",
             "multistyle/loop.py", "if settings.until_loss is not None and total <= settings.until_loss:",
             "if False:", ("tests/cli/test_cli.py::test_until_loss_and_tol_stop_early_and_say_why",)),
    Mutation("stop-tol-spike", "--tol compares the best losses of windows, so one spike does not stop a run",
             "multistyle/loop.py", 'before = min(row["total"] for row in history[:-TOL_WINDOW])',
             'before = history[-TOL_WINDOW - 1]["total"]',
             ("tests/core/test_loop.py::test_stop_rules_ignore_a_single_spike",)),
    Mutation("stop-rules-on-coarse-scales", "the stop rules judge only the final scale", "multistyle/loop.py",
             'stopped = stop_reason(settings, history[first_epoch:]) if final else ""',
             "stopped = stop_reason(settings, history[first_epoch:])",
             ("tests/cli/test_cli.py::test_stop_rules_judge_only_the_final_scale",)),
    Mutation("scales-not-halved", "each scale is half the next one", "multistyle/loop.py",
             "max(1, round(height / 2 ** k)), max(1, round(width / 2 ** k))",
             "max(1, round(height / (k + 1))), max(1, round(width / (k + 1)))",
             ("tests/core/test_loop.py::test_scale_plan_halves_sizes_and_favours_coarse_scales",)),
    Mutation("scales-epochs-equal", "coarse scales get more epochs (they cost a quarter each)",
             "multistyle/loop.py", "weights = [2 ** (scales - 1 - k) for k in range(scales)]",
             "weights = [1 for k in range(scales)]",
             ("tests/core/test_loop.py::test_scale_plan_halves_sizes_and_favours_coarse_scales",)),
    Mutation("final-share-ignored", "--final-share gives the full size that share of the epochs",
             "multistyle/loop.py", "if final_share is not None and scales > 1:", "if False:",
             ("tests/core/test_loop.py::test_scale_plan_halves_sizes_and_favours_coarse_scales",)),
    Mutation("tv-smoothing-changes-the-loss", "--tv-smoothing changes the descent, not the loss reported",
             "multistyle/losses.py", "return B.mean(smooth + B.stop_gradient(B.abs(d) - smooth))",
             "return B.mean(smooth)",
             ("tests/backends/test_conformance.py::test_smoothed_tv_keeps_the_value_and_descends_the_smooth_slope",)),
    Mutation("tv-smoothing-sign-gradient", "--tv-smoothing descends sqrt(d**2 + s**2)",
             "multistyle/losses.py", "smooth = B.sqrt(B.square(d) + smoothing * smoothing)",
             "smooth = B.abs(d)",
             ("tests/backends/test_conformance.py::test_smoothed_tv_keeps_the_value_and_descends_the_smooth_slope",)),
    Mutation("tv-smoothing-fixed", "--tv-smoothing shrinks with the learning rate",
             "multistyle/loop.py", "tv_scale[0] = lr / first_lr if first_lr else 1.0", "tv_scale[0] = 1.0",
             ("tests/core/test_loop.py::test_the_smoothing_shrinks_with_the_rate_and_restarts_at_each_scale",)),
    Mutation("tv-scale-ignored", "--tv-smoothing shrinks with the learning rate",
             "multistyle/objective.py", "smoothing = smoothing * tv_scale", "smoothing = smoothing",
             ("tests/backends/test_conformance.py::test_the_compiled_objective_takes_the_smoothing_scale_at_every_call",)),
    Mutation("scales-restart-from-content", "each finer scale starts from the coarser result, upsampled",
             "multistyle/transfer.py", "start = images.resize_array(start, scale_shape)", "start = content_x",
             ("tests/cli/test_cli.py::test_scales_run_coarse_to_fine_and_deliver_the_size_asked_for",)),
    Mutation("scale-start-detail-lost", "--scale-start content-detail adds the content's detail to the change",
             "multistyle/transfer.py", "start = content_x + images.resize_array(start - previous_content, scale_shape)",
             "start = images.resize_array(start, scale_shape)",
             ("tests/core/test_loop.py::test_each_larger_scale_starts_as_scale_start_says",)),
    Mutation("scale-start-detail-unsubtracted", "--scale-start content-detail upsamples the change, not the result",
             "multistyle/transfer.py", "start = content_x + images.resize_array(start - previous_content, scale_shape)",
             "start = content_x + images.resize_array(start, scale_shape)",
             ("tests/core/test_loop.py::test_each_larger_scale_starts_as_scale_start_says",)),
    # -- assertions that replaced vacuous ones: each is shown to fail on the bug it guards against -------------
    Mutation("report-gluon-epsilon-unmeasured", "the report measures Gluon's epsilon on the job's own gradient",
             "multistyle/explain.py", 'diff = _levels(ours - gluon, g["pixel"])', 'diff = _levels(ours - ours, g["pixel"])',
             ("tests/cli/test_compare.py::test_report_explains_the_code_and_measures_where_the_maths_differs",)),
    Mutation("optimizer-declared-not-run", "backends list, for each optimizer, whose code computes it",
             "backends/torch_backend.py",
             "optimizer = torch.optim.RMSprop([x], lr=lr, alpha=0.99, eps=1e-8)",
             'return __import__("multistyle.optim").optim.RMSprop(self, image, lr, lr_decay, lr_decay_every)',
             ("tests/backends/test_conformance.py::test_is_a_complete_backend",)),
    Mutation("input-rounded-before-the-backend", "every backend sees the input bytes preprocess() makes",
             "multistyle/transfer.py", "content_x = images.to_input(content_pixels, normalize=not pixel)",
             "content_x = images.to_input(np.round(content_pixels * 64) / 64, normalize=not pixel)",
             ("tests/backends/test_conformance.py::test_preprocessed_input_reaches_the_backend_unchanged",)),
    Mutation("random-weights-depend-on-backend", "random:N is the same network on every backend",
             "multistyle/weightfiles.py", "return LoadedWeights(random_weights(int(str(value)), last)",
             "return LoadedWeights(random_weights(int(str(value)) + (backend is not None), last)",
             ("tests/backends/test_weights.py::test_random_weights_are_the_same_on_every_backend",)),
    Mutation("bench-prints-p10-as-median", "bench prints what it writes", "multistyle/bench.py",
             "{row['seconds_per_iteration']:8.4f} {spread:>15}", "{row['seconds_p10']:8.4f} {spread:>15}",
             ("tests/cli/test_compare.py::test_bench_prints_and_writes_figures",)),
    Mutation("bench-floor-after-the-run", "bench alternates the floor with the run's iterations",
             "multistyle/measure.py", "if floor is not None and len(floor.times) < wanted:", "if False:",
             ("tests/cli/test_compare.py::test_bench_alternates_the_floor_with_the_run",)),
    Mutation("bench-floor-ratio-below-one", "bench flags a floor slower than the step instead of a ratio below 1",
             "multistyle/bench.py", "if median > step:", "if False:",
             ("tests/cli/test_compare.py::test_bench_flags_a_floor_slower_than_the_step_instead_of_a_ratio_below_one",)),
    # -- the GPU branches, through fakes at the framework boundary --------------------------------------------------
    Mutation("gpu-nvidia-smi-counts-mig-lines", "batch counts GPUs from nvidia-smi -L, MIG devices not twice",
             "multistyle/batch/local.py", 'if line.startswith("GPU "))', "if line.strip())", (T_GPU,)),
    Mutation("gpu-worker-not-pinned", "batch pins one worker per GPU: auto and gpu jobs run on the worker's GPU",
             "multistyle/batch/local.py", 'if device and payload["device"] in ("auto", "gpu"):', "if False:", (T_GPU,)),
    Mutation("gpu-auto-picks-cpu", "--device auto picks a GPU where there is one", "multistyle/backend/devices.py",
             'return gpus[0] if gpus else "cpu"', 'return "cpu"', (T_GPU,)),
    Mutation("gpu-torch-device-index", "gpu:N is torch's cuda:N", "backends/torch_backend.py",
             'else f"cuda:{gpu}")', 'else "cuda:0")', (T_GPU,)),
    Mutation("gpu-torch-peak-memory", "a GPU run reports torch's peak allocated memory", "backends/torch_backend.py",
             'int(torch.cuda.max_memory_allocated(self.native_device)) if self.gpu is not None else None', "None",
             (T_GPU,)),
    Mutation("gpu-torch-cudnn-not-deterministic", "--deterministic turns on cuDNN's deterministic kernels",
             "backends/torch_backend.py", "torch.backends.cudnn.deterministic = True",
             "torch.backends.cudnn.deterministic = False", (T_GPU,)),
    Mutation("gpu-plan-without-device-figure", "run --plan --device gpu predicts the GPU's memory",
             "multistyle/memory.py", 'device=parts["weights"] + parts["activations"] + state, parts=parts)',
             "device=None, parts=parts)", (T_GPU,)),
    # -- the live page (multistyle serve) ----------------------------------------------------------------------
    Mutation("serve-stop-leaves-workers", "Stop ends the run's worker processes",
             "multistyle/serve/live.py", "    if process.pid is None:\n        return\n",
             "    return\n", (f"{T_SERVE}::test_a_second_run_is_refused_and_stop_ends_the_workers",)),
    Mutation("serve-upload-unchecked", "an upload gets run's checks (format allowlist, --max-pixels)",
             "multistyle/serve/server.py",
             'image = images.load_image(name or "upload", option, self.max_pixels, data=data)',
             "image = type('Unchecked', (), {'width': 0, 'height': 0})()",
             (f"{T_SERVE}::test_a_bad_upload_is_refused_in_one_line",)),
    Mutation("serve-files-by-path", "no request path reaches the file system",
             "multistyle/serve/server.py", 'raise Request(404, "not found")\n\n    def _body',
             'return self._send(200, open("." + urllib.parse.unquote(path), "rb").read(), "text/plain")'
             "\n\n    def _body", (f"{T_SERVE}::test_no_request_path_reaches_the_file_system",)),
    Mutation("serve-watchers-block", "a slow or closed browser never stalls a worker",
             "multistyle/serve/live.py", "watcher.put_nowait((event, text))", "watcher.put((event, text))",
             (f"{T_SERVE}::test_a_watcher_that_never_reads_is_dropped_not_waited_for",)),
    # -- the program's exit ---------------------------------------------------------------------------------
    Mutation("exit-collects-every-object", "a command's process ends without a last walk over the framework's objects",
             "multistyle/cli/__init__.py", "        if argv is None:\n            _before_exit()\n", "        pass\n",
             ("tests/cli/test_exit.py::test_the_program_freezes_what_is_alive_when_its_command_ends",)),
    Mutation("mkl-avx2-on-intel-too", "Paddle's MKL is asked for AVX2 on AMD only (on Intel it has AVX-512)",
             "multistyle/backend/devices.py", 'if first.get("vendor_id") == "AuthenticAMD" and "avx2"', 'if "avx2"',
             ("tests/core/test_registry.py::test_mkl_takes_its_avx2_code_on_amd_only",)),
    Mutation("mkl-avx2-not-asked-before-paddle", "Paddle's MKL takes its AVX2 code on AMD (6.7x shorter steps)",
             "multistyle/backend/loader.py", "    if spec.mkl_avx2_on_amd:\n        mkl_avx2_on_amd()\n", "",
             ("tests/core/test_registry.py::test_paddle_alone_asks_mkl_for_avx2_on_amd_before_its_import",)),
    # -- the process's heap --------------------------------------------------------------------------------
    Mutation("heap-not-kept-by-get-backend", "a run reuses the buffers an iteration frees (no page faults)",
             "multistyle/backend/loader.py", "    keep_freed_buffers()\n    return", "    return",
             (f"{T_HEAP}::test_a_backend_made_by_get_backend_keeps_freed_blocks[torch]",)),
    Mutation("heap-trimmed", "a run reuses the buffers an iteration frees (no page faults)",
             "multistyle/heap.py", " and mallopt(M_TRIM_THRESHOLD, KEEP_BYTES) == 1", "",
             (f"{T_HEAP}::test_a_freed_block_is_reused_without_faulting_its_pages_in_again",)),
    # -- Ctrl-C that framework code swallows ----------------------------------------------------------------------
    Mutation("interrupt-lost-in-a-framework-callback", "Ctrl-C stops a run at its next epoch",
             "multistyle/loop.py", "range(epochs):\n            interrupts.check()\n", "range(epochs):\n",
             (f"{T_INT}::test_a_ctrl_c_lost_inside_an_epoch_stops_the_run_at_the_next_epoch[torch]",)),
    Mutation("interrupt-lost-in-the-last-epoch", "Ctrl-C stops a run at its next epoch",
             "multistyle/interrupts.py", "    if lost:\n        raise KeyboardInterrupt", "",
             (f"{T_INT}::test_a_ctrl_c_lost_in_the_last_epoch_still_raises_and_is_raised_once",)),
    Mutation("interrupt-raised-again", "Ctrl-C stops a run at its next epoch",
             "multistyle/interrupts.py", "lost, _noted[0] = _noted[0], False", "lost = _noted[0]",
             (f"{T_INT}::test_a_second_ctrl_c_inside_an_epoch_stops_at_once",)),
    Mutation("interrupt-raised-inside-an-epoch", "Ctrl-C stops a run between two epochs, never inside framework code",
             "multistyle/interrupts.py", "if _deferring[0] and not _noted[0]:", "if False:",
             (f"{T_INT}::test_a_ctrl_c_inside_an_epoch_lets_that_epoch_finish_and_stops_the_run_before_the_next",)),
    Mutation("second-interrupt-waits-for-the-epoch", "a second Ctrl-C stops a run at once",
             "multistyle/interrupts.py", "if _deferring[0] and not _noted[0]:", "if _deferring[0]:",
             (f"{T_INT}::test_a_second_ctrl_c_inside_an_epoch_stops_at_once",)),
    Mutation("interrupt-overrides-a-programs-handler", "a program's own SIGINT handler decides",
             "multistyle/interrupts.py", "previous is not signal.default_int_handler:", "not callable(previous):",
             (f"{T_INT}::test_a_programs_own_handler_is_left_to_decide",)),
    # -- style losses (issue 42) ---------------------------------------------------------------------------------
    Mutation("mean-std-loss-summed-not-averaged", "each style loss is normalised as its docs say",
             "multistyle/losses.py", "return (B.mean(B.square(mean - target_mean))",
             "return (B.sum(B.square(mean - target_mean))", (f"{T_LOSSES}[torch-positions>channels-nchw]",)),
    Mutation("w2-not-over-the-channels", "each style loss is normalised as its docs say",
             "multistyle/losses.py", "    return distance / channels", "    return distance",
             (f"{T_LOSSES}[torch-positions>channels-nchw]",)),
    Mutation("w2-square-root-unshifted", "W2's square root cannot diverge in float32",
             "multistyle/losses.py", "y, z = a / norm + shift * identity, identity", "y, z = a / norm, identity",
             ("tests/backends/test_conformance.py::test_w2_of_a_low_rank_map_matches_the_oracle[torch]",)),
    # -- style networks -----------------------------------------------------------------------------------------
    Mutation("style-network-without-its-residuals", "the network is Johnson et al.'s, as PyTorch's examples ship it",
             "multistyle/nets/transformer.py", "            x = x + saved.pop()", "            x = saved.pop()",
             (T_NET,)),
    Mutation("style-network-norm-epsilon", "the network is Johnson et al.'s, as PyTorch's examples ship it",
             "multistyle/nets/transformer.py", "EPSILON = 1e-5", "EPSILON = 1e-2", (T_NET,)),
    Mutation("resume-forgets-adams-step-count", "--resume continues to the same parameters as an uninterrupted run",
             "multistyle/optim.py", 'self.t = int(np.asarray(state["t"]).reshape(-1)[0]) if "t" in state else 0',
             "self.t = 0", (f"{T_TRAIN}::test_resume_equals_an_uninterrupted_run",)),
    Mutation("onnx-upsampling-not-nearest", "the ONNX export equals the backend's picture within 1 level",
             "multistyle/nets/onnx_export.py", 'mode="nearest",', 'mode="linear",',
             (f"{T_TRAIN}::test_train_then_run_then_export",)),
    # -- the release ------------------------------------------------------------------------------------------------
    Mutation("version-printed-not-the-packages", "multistyle --version says the package's version",
             "multistyle/cli/__init__.py", 'version=f"multistyle {__version__}"', 'version="multistyle 0.1"',
             (f"{T_RELEASE}::test_the_version_is_one_and_the_metadata_and_the_cli_say_it",)),
    Mutation("long-description-keeps-relative-links", "the package index's page has no link that breaks there",
             "setup.py", 'return text if not path or path.rstrip("/").split("/")[0] in text else f"{text} (`{path}`)"',
             "return match.group(0)",
             (f"{T_RELEASE}::test_the_readmes_own_description_has_no_relative_link",)),
)
