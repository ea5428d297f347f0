"""The `safevlm` CLI contract: JSON keys, batch order, one-line errors, --help everywhere."""

import json
import subprocess
import sys

import pytest

from safevlm.cli import build_parser, main


def run(*args, check=False):
    proc = subprocess.run([sys.executable, "-m", "safevlm", *args], capture_output=True, text=True,
                          timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def commands():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return list(sub.choices)


@pytest.mark.parametrize("command", commands())
def test_every_command_has_help_and_exits_zero(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0 and "usage" in capsys.readouterr().out


def test_classify_json_gives_one_object_per_image_with_the_contract_keys(photo_path, text_image_path):
    out = run("classify", str(photo_path), str(text_image_path), "--json", check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in rows] == [str(photo_path), str(text_image_path)]
    for r in rows:
        assert {"image", "type", "level", "type_probs", "level_probs", "decision", "flagged", "ms"} <= set(r)
        assert len(r["type_probs"]) == 7 and abs(sum(r["type_probs"].values()) - 1) < 1e-4
        assert len(r["level_probs"]) == 4 and r["flagged"] == (r["decision"] != "allow")


def test_chat_batch_answers_in_order_and_reports_bad_lines_in_place(tmp_path, photo_path):
    batch = tmp_path / "b.jsonl"
    batch.write_text("\n".join(json.dumps(x) for x in [
        {"image": str(photo_path), "prompt": "What animal is this?"},
        {"image": str(tmp_path / "missing.png"), "prompt": "Hi"},
        {"image": str(photo_path), "prompt": "What colour is it?"},
    ]))
    proc = run("chat", "--batch", str(batch), "--max-new-tokens", "6", "--mode", "off")
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 1 and len(rows) == 3
    assert rows[0]["prompt"] == "What animal is this?" and rows[0]["response"]
    assert "file not found" in rows[1]["error"]
    assert set(rows[2]["timings"]) >= {"vision", "classify", "first_token", "total"}


def test_errors_are_one_line_without_traceback(tmp_path):
    bad_ckpt = tmp_path / "ckpt"
    bad_ckpt.mkdir()
    for args, message in [
        (("classify", str(tmp_path / "none.png")), "file not found"),
        (("classify", str(tmp_path / "none.png"), "--checkpoint", str(bad_ckpt)), "not a SafeVLM checkpoint"),
        (("chat", "--image", "x.png"), "either --prompt"),
    ]:
        proc = run(*args)
        assert proc.returncode != 0
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1


def test_malformed_thresholds_fail_before_any_work(photo_path):
    proc = run("classify", str(photo_path), "--thresholds", '{"illegal_risk": 2}')
    assert proc.returncode == 1 and "must be in [0, 1]" in proc.stderr
