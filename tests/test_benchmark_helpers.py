"""The benchmarks' "within noise" arithmetic (training runs, side-by-side commits), on inputs with known answers."""
import pytest

from benchmarks.train import end_of_run_spread, within_noise


def test_vae_spread_is_the_last_epochs_standard_deviation():
    history = {"train_loss": [200.0] * 5 + [100.0, 102.0] * 5, "val_loss": [300.0] * 5 + [110.0] * 10}
    spread = end_of_run_spread(history, "vae")
    assert spread == {"train_loss": pytest.approx(1.0), "test_loss": pytest.approx(0.0)}


def test_gan_spread_uses_100_step_means_of_the_last_epochs():
    # 12 epochs of 200 steps; the last 10 alternate between blocks of 100 steps at 1.0 and at 3.0
    steps = [50.0] * 400 + ([1.0] * 100 + [3.0] * 100) * 10
    history = {"d_real": steps, "d_fake": [0.5] * len(steps), "g": steps,
               "epoch_end_step": [200 * (i + 1) for i in range(12)]}
    spread = end_of_run_spread(history, "gan")
    assert spread["d_real"] == pytest.approx(1.0) and spread["g"] == pytest.approx(1.0)
    assert spread["d_fake"] == 0.0


def test_within_noise_compares_against_twice_the_plain_runs_spread():
    plain = {"runs": [{"preset": "vae-seed", "final": {"test_loss": 107.0}, "end_of_run_spread": {"test_loss": 0.4}}]}
    close = {"runs": [{"preset": "vae-seed", "final": {"test_loss": 107.7}}]}
    far = {"runs": [{"preset": "vae-seed", "final": {"test_loss": 108.0}}]}
    assert within_noise(plain, close)["vae-seed"]["test_loss"]["within"] is True
    verdict = within_noise(plain, far)["vae-seed"]["test_loss"]
    assert verdict["within"] is False and verdict["difference"] == pytest.approx(1.0)


def test_cpu_seconds_counts_a_process_and_its_children():
    """benchmarks.common.cpu_seconds (the workers benchmark's "cores busy"): a child that burns CPU and
    then waits shows up in its parent's tree with the CPU it used."""
    import subprocess
    import sys

    from benchmarks.common import cpu_seconds, process_tree
    burn = "import sys, time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n" \
           "print('burnt', flush=True)\nsys.stdin.read()\n"
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys\n"
                               f"child = subprocess.Popen([sys.executable, '-c', {burn!r}], stdin=subprocess.PIPE)\n"
                               "print(child.pid, flush=True)\nchild.wait()\n"],
                              stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "burnt"  # the child has used its 0.3 s of CPU
        assert child in process_tree(parent.pid)
        assert cpu_seconds(parent.pid) >= 0.3 > cpu_seconds(parent.pid) - cpu_seconds(child)
    finally:
        for pid in process_tree(parent.pid)[::-1]:
            subprocess.run(["kill", str(pid)], check=False)
        parent.wait()


def test_ab_summary_takes_the_median_of_each_rounds_ratio():
    from benchmarks.ab import summary

    def side(png, npz, us):
        return {"sample_png_req_per_s": png, "dataset_npz_images_per_s": npz, "sample_in_process_us": us}

    # the machine slows down between rounds; within each round head is 10 % faster on PNG
    rounds = [{"base": side(1000, 100, 10), "head": side(1100, 100, 9)},
              {"base": side(500, 100, 10), "head": side(550, 90, 11)},
              {"base": side(2000, 100, 10), "head": side(2200, 120, 10)}]
    result = summary(rounds)
    assert result["sample_png_req_per_s"] == {"speed_ratio": 1.1, "head_faster": 3}
    assert result["dataset_npz_images_per_s"] == {"speed_ratio": 1.0, "head_faster": 1}
    # a time: 9 us against 10 is faster, 11 slower
    assert result["sample_in_process_us"] == {"speed_ratio": 1.0, "head_faster": 1}
