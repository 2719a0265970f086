import pytest

from matcher.manifest import ManifestError, load_manifest
from matcher.model import Upload


def test_csv_and_json_lines_manifests(tmp_path):
    (tmp_path / "m.csv").write_text('path,uploader,context\na.jpg,u1,news;crisis\n"sub/b c.jpg",,\n')
    (tmp_path / "m.jsonl").write_text('{"path": "a.jpg", "uploader": "u1", "context": ["news", "crisis"]}\n\n'
                                      '{"path": "sub/b c.jpg"}\n')
    for name in ("m.csv", "m.jsonl"):
        entries = load_manifest(str(tmp_path / name))
        assert entries[str(tmp_path / "a.jpg")] == Upload("u1", ("crisis", "news"))
        assert entries[str(tmp_path / "sub" / "b c.jpg")] == Upload(None, ())


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("m.csv", "file,uploader\na.jpg,u\n", "m.csv:1: a CSV manifest needs a header row with a 'path' column"),
        ("m.jsonl", '{"path": "a.jpg"}\n{"path": \n', "m.jsonl:2: not valid JSON"),
        ("m.jsonl", '{"path": "a.jpg", "context": 5}\n', "m.jsonl:1: context must be"),
        ("m.csv", "path,uploader\n,u\n", "m.csv:2: missing 'path'"),
    ],
)
def test_bad_manifests_name_the_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ManifestError, match=message):
        load_manifest(str(tmp_path / name))
