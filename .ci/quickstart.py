"""Builds the README's quick start as a new user would: a fresh crate whose Cargo.toml is the
README's `[dependencies]` block (meshtrace pointed at this checkout) and whose main.rs is the
quick start's code with the doctest-hidden lines shown. Fails if either no longer compiles."""

import os
import pathlib
import re
import subprocess
import sys

root = pathlib.Path(__file__).resolve().parent.parent
readme = (root / "README.md").read_text()
quick = readme[readme.index("## Quick start"):]

toml = re.search(r"```toml\n(\[dependencies\]\n.*?)```", quick, re.S).group(1)
if not re.search(r'^meshtrace = "[^"]+"', toml, re.M):
    sys.exit("quickstart: the README's [dependencies] no longer names meshtrace by version")
toml = re.sub(r'^meshtrace = "[^"]+"', f'meshtrace = {{ path = "{root}" }}', toml, flags=re.M)

code = re.search(r"```rust,no_run\n(.*?)```", quick, re.S).group(1)
code = "\n".join(
    line[2:] if line.startswith("# ") else ("" if line == "#" else line)
    for line in code.splitlines()
)

crate = root / "target" / "quickstart"
(crate / "src").mkdir(parents=True, exist_ok=True)
(crate / "Cargo.toml").write_text(
    '[package]\nname = "quickstart"\nversion = "0.0.0"\nedition = "2021"\n\n'
    "[workspace]\n\n" + toml
)
(crate / "src" / "main.rs").write_text(code + "\n")
env = dict(os.environ, CARGO_TARGET_DIR=str(crate / "target"))
sys.exit(subprocess.call(["cargo", "build", "--quiet"], cwd=crate, env=env))
