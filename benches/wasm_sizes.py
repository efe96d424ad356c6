"""What each crate contributes to a wasm binary: the code size of its functions (named by the
wasm "name" section that rustc leaves in the binary before wasm-opt strips it), grouped by the
crate that defines them, plus the data segments. Generic code is counted where it was
instantiated from (the crate of the function's own path).

Usage: python3 benches/wasm_sizes.py <file.wasm> [how many crates to list, default 25]
"""

import re
import sys
from collections import defaultdict


def leb(data, i):
    """An unsigned LEB128 at i: (value, next index)."""
    result, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def sections(data):
    assert data[:4] == b"\0asm", "not a wasm file"
    i = 8
    while i < len(data):
        sid = data[i]
        size, j = leb(data, i + 1)
        yield sid, data[j : j + size]
        i = j + size


def function_names(payload):
    """The function names of a "name" custom section (after its name field)."""
    names = {}
    i = 0
    while i < len(payload):
        sub = payload[i]
        size, j = leb(payload, i + 1)
        if sub == 1:
            count, k = leb(payload, j)
            for _ in range(count):
                index, k = leb(payload, k)
                length, k = leb(payload, k)
                names[index] = payload[k : k + length].decode("utf-8", "replace")
                k += length
        i = j + size
    return names


def demangle_crate(name):
    """The crate a (mangled or demangled) Rust symbol belongs to, as well as can be told."""
    m = re.match(r"_ZN(\d+)", name)
    if m:  # legacy mangling: _ZN<len><ident>...; an impl's ident is its escaped `<T as Trait>`
        n = int(m.group(1))
        start = m.end()
        first = name[start : start + n]
        return demangle_crate(first) if first.startswith("_$LT$") else first
    if re.match(r"_?R[A-Z]", name):  # v0 mangling: the first crate root, C[s<hash>_]<len><name>
        m = re.search(r"C(?:s[0-9a-zA-Z]*_)?(\d+)([A-Za-z_][A-Za-z0-9_]*)", name)
        if m:
            return m.group(2)[: int(m.group(1))]
    # rustc's escapes in symbol names: _$LT$Vec$LT$T$GT$$u20$as$u20$Trait$GT$ and alike.
    for code, text in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$C$", ","), ("$RF$", "&"),
                       ("$BP$", "*"), ("$u7b$", "{"), ("$u7d$", "}"), ("$u5b$", "["),
                       ("$u5d$", "]"), ("$u27$", "'"), ("..", "::")):
        name = name.replace(code, text)
    name = name.lstrip("_")
    if name.startswith("<"):
        # <Type as Trait>::f: the type's crate, or the trait's when the type is a bare generic
        # (`<T as Trait>`) or a primitive.
        inner = name[1:]
        m = re.match(r"\s*[&*]*\s*(?:mut |const |dyn |impl )?([A-Za-z_][A-Za-z0-9_]*)", inner)
        first = m.group(1) if m else ""
        path_follows = m and inner[m.end() : m.end() + 2] == "::"
        if not path_follows:
            trait = re.search(r" as ([A-Za-z_][A-Za-z0-9_]*)::", inner)
            return trait.group(1) if trait else (first or "?")
        return first
    for prefix in ("impl ", "dyn "):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    head = re.split(r"::|<|>| |\(", name, maxsplit=1)[0]
    return head or "?"


# What the crates are there for, by name prefix (the first that matches).
FAMILIES = [
    ("WebGPU backend: cubecl's kernel compiler and runtime, wgpu", (
        "cubecl", "cubek", "pliron", "rustc_apfloat", "burn_cubecl", "burn_wgpu", "wgpu", "naga",
        "combine", "spirv", "rspirv", "sanitize_filename", "float_ord", "variadics_please")),
    ("burn's CPU backend and tensors", ("burn_flex", "burn_ndarray", "gemm", "burn_std",
                                        "burn_backend", "burn_dispatch", "burn_ir", "macerator",
                                        "pulp", "seq_macro", "bytemuck", "half", "num")),
    ("burn's autodiff, optimisers, modules", ("burn_autodiff", "burn_optim", "burn_core",
                                              "burn_nn", "burn_tensor", "burn")),
    ("tokenizers and regexes", ("tokenizers", "regex", "fancy_regex", "onig", "unicode",
                                "esaxx", "monostate", "aho_corasick", "memchr", "dary_heap")),
    ("leptos and the UI", ("leptos", "reactive_graph", "tachys", "any_spawner", "either_of",
                           "or_poisoned", "throw_error", "oco", "guardian")),
    ("JSON and serde", ("serde", "ryu", "itoa")),
    ("zip, deflate, SHA-256", ("zip", "flate2", "miniz", "crc32", "adler", "sha2", "digest",
                               "block_buffer", "crypto")),
    ("wasm-bindgen, js-sys, web-sys", ("wasm_bindgen", "js_sys", "web_sys", "gloo")),
    ("Rust's standard library", ("core", "alloc", "std", "hashbrown", "dlmalloc", "compiler_builtins")),
    ("Tunelab", ("tunelab",)),
]


def family(crate):
    for name, prefixes in FAMILIES:
        if crate.startswith(prefixes):
            return name
    return "other"


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    data = open(path, "rb").read()
    imported = 0
    bodies = []
    names = {}
    data_bytes = 0
    for sid, payload in sections(data):
        if sid == 2:  # imports: functions among them take the first indices
            count, i = leb(payload, 0)
            for _ in range(count):
                for _ in range(2):
                    length, i = leb(payload, i)
                    i += length
                kind = payload[i]
                i += 1
                if kind == 0:
                    _, i = leb(payload, i)
                    imported += 1
                elif kind == 1:
                    i += 1
                    flags, i = leb(payload, i)
                    _, i = leb(payload, i)
                    if flags & 1:
                        _, i = leb(payload, i)
                elif kind == 2:
                    flags, i = leb(payload, i)
                    _, i = leb(payload, i)
                    if flags & 1:
                        _, i = leb(payload, i)
                elif kind == 3:
                    i += 2
                else:
                    raise ValueError(f"import kind {kind}")
        elif sid == 10:  # code
            count, i = leb(payload, 0)
            for _ in range(count):
                size, j = leb(payload, i)
                bodies.append(size + (j - i))
                i = j + size
        elif sid == 11:
            data_bytes += len(payload)
        elif sid == 0:
            length, i = leb(payload, 0)
            if payload[i : i + length] == b"name":
                names = function_names(payload[i + length :])
    by_crate = defaultdict(int)
    for k, size in enumerate(bodies):
        by_crate[demangle_crate(names.get(imported + k, "?"))] += size
    code = sum(bodies)
    print(f"{path}: {len(data) / 1e6:.2f} MB; code {code / 1e6:.2f} MB in {len(bodies)} "
          f"functions, data {data_bytes / 1e6:.2f} MB; named functions: {len(names)}")
    families = defaultdict(int)
    for crate, size in by_crate.items():
        families[family(crate)] += size
    print("| what | code | share |")
    print("|---|---|---|")
    for name, size in sorted(families.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {size / 1e3:,.0f} kB | {100 * size / code:.1f}% |")
    print()
    print("| crate | code | share |")
    print("|---|---|---|")
    for crate, size in sorted(by_crate.items(), key=lambda kv: -kv[1])[:top]:
        print(f"| {crate} | {size / 1e3:,.0f} kB | {100 * size / code:.1f}% |")


if __name__ == "__main__":
    main()
