#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What the stalld binary links statically, from Cargo.lock (through `cargo metadata`, offline).

The crates are those reachable from stalld over normal dependencies (no build scripts' or
proc macros' dependencies, no dev-dependencies: they are not in the binary) for the Linux
targets the packages are built for, with the default features. The C libraries are the ones
crates carry inside (libbpf, in libbpf-sys). Distributions want both listed: Fedora as
`Provides: bundled(...)` and the License tag, Debian in debian/copyright.

    bundled.py rpm-provides SOURCE-DIR        Provides: lines for the spec
    bundled.py rpm-license SOURCE-DIR         the License tag (SPDX expression)
    bundled.py debian-copyright SOURCE-DIR    debian/copyright stanzas for vendor/
    bundled.py linux-crates SOURCE-DIR        NAME-VERSION of every crate a Linux build needs
                                              (any dependency kind: make dist prunes the rest)
"""
import json
import re
import subprocess
import sys

# The Linux targets packages are (or will be) built for: a crate needed for one of them only
# is still vendored and listed.
LINUX_TARGETS = [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "s390x-unknown-linux-gnu",
    "powerpc64le-unknown-linux-gnu",
    "riscv64gc-unknown-linux-gnu",
    "i686-unknown-linux-gnu",
]

# C libraries that crates compile in from their own sources: crate -> (name, license, subdir).
BUNDLED_C = {
    "libbpf-sys": ("libbpf", "LGPL-2.1-only OR BSD-2-Clause", "libbpf"),
}


def metadata(source, target):
    platform = ["--filter-platform", target] if target else []
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--offline"] + platform,
        cwd=source, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def crates(source, linked_only, targets=LINUX_TARGETS):
    """The packages stalld depends on for TARGETS (None: any platform)."""
    found = {}
    for target in targets:
        meta = metadata(source, target)
        packages = {p["id"]: p for p in meta["packages"]}
        nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
        root = meta["resolve"]["root"]
        todo, seen = [root], {root}
        while todo:
            for dep in nodes[todo.pop()]["deps"]:
                kinds = {k["kind"] for k in dep["dep_kinds"]}
                if linked_only:
                    proc_macro = any("proc-macro" in t["kind"] for t in packages[dep["pkg"]]["targets"])
                    if None not in kinds or proc_macro:
                        continue
                if dep["pkg"] not in seen:
                    seen.add(dep["pkg"])
                    todo.append(dep["pkg"])
        seen.discard(root)
        found.update({i: packages[i] for i in seen})
    return sorted(found.values(), key=lambda p: (p["name"], p["version"]))


def rpm_version(version):
    # rpm versions have no '-': a semver pre-release sorts before its release with '~'.
    return version.replace("-", "~")


def c_library(package):
    name, license, _ = BUNDLED_C[package["name"]]
    # libbpf-sys 1.7.0+v1.7.0: the build metadata is libbpf's version.
    version = package["version"].split("+v", 1)[-1]
    return name, version, license


def top_level(expression, operator):
    """The operands of EXPRESSION joined by OPERATOR outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(expression):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and expression.startswith(f" {operator} ", i):
            parts.append(expression[start:i])
            start = i + len(operator) + 2
    parts.append(expression[start:])
    return [p.strip() for p in parts]


def normal(expression):
    """One spelling for one license choice: "MIT/Apache-2.0" (old crates), "(Apache-2.0 OR
    MIT)" and "MIT OR Apache-2.0" become "Apache-2.0 OR MIT"; AND operands keep their order."""
    operands = []
    for operand in top_level(expression.strip(), "AND"):
        inner = operand[1:-1] if operand.startswith("(") and operand.endswith(")") else operand
        choices = sorted(re.split(r"\s*/\s*|\s+OR\s+", inner))
        operands.append(choices)
    return operands


def spdx(operands):
    return " AND ".join(" OR ".join(c) if len(c) == 1 or len(operands) == 1 else f"({' OR '.join(c)})"
                        for c in operands)


def license_of(package):
    license = package.get("license")
    if not license:
        sys.exit(f"bundled.py: {package['name']} {package['version']} declares no SPDX license")
    return normal(license)


def rpm_provides(source):
    lines = []
    for package in crates(source, linked_only=True):
        lines.append(f"Provides:       bundled(crate({package['name']})) = {rpm_version(package['version'])}")
        if package["name"] in BUNDLED_C:
            name, version, _ = c_library(package)
            lines.append(f"Provides:       bundled({name}) = {rpm_version(version)}")
    return "\n".join(lines)


def rpm_license(source):
    terms = set()
    for package in crates(source, linked_only=True):
        terms.add(spdx(license_of(package)))
        if package["name"] in BUNDLED_C:
            terms.add(spdx(normal(c_library(package)[2])))
    wrapped = sorted(f"({t})" if " OR " in t or " AND " in t else t for t in terms)
    return " AND ".join(["GPL-2.0-or-later"] + [t for t in wrapped if t != "GPL-2.0-or-later"])


# SPDX identifiers -> Debian's short names (copyright-format 1.0), and the text of each.
DEBIAN_NAMES = {
    "MIT": "Expat",
    "Apache-2.0": "Apache-2.0",
    "Unlicense": "Unlicense",
    "BSD-2-Clause": "BSD-2-clause",
    "BSD-3-Clause": "BSD-3-clause",
    "Zlib": "Zlib",
    "Unicode-3.0": "Unicode-3.0",
    "LGPL-2.1-only": "LGPL-2.1",
    "LGPL-2.1-or-later": "LGPL-2.1+",
    "GPL-2.0-only": "GPL-2",
    "GPL-2.0-or-later": "GPL-2+",
    "LGPL-3.0-or-later": "LGPL-3+",
    "MPL-2.0": "MPL-2.0",
    "ISC": "ISC",
}


def debian_license(operands):
    """Debian's form of a license (copyright-format 1.0: "A or B, and C"), and its names."""
    names, groups = [], []
    for choices in operands:
        group = []
        for choice in choices:
            license, _, exception = choice.partition(" WITH ")
            if license not in DEBIAN_NAMES:
                sys.exit(f"bundled.py: no Debian name for license {license}: add it to DEBIAN_NAMES and LICENSE_TEXTS")
            name = DEBIAN_NAMES[license]
            if exception:
                name += f" with {exception.removesuffix('-exception')} exception"
            group.append(name)
        names += group
        groups.append(" or ".join(group))
    joiner = ", and " if any(len(c) > 1 for c in operands) else " and "
    return joiner.join(groups), names


def debian_copyright(source):
    """Every crate of vendor/, the stubs of other systems' crates included (their manifests)."""
    stanzas, used = [], set()
    for package in crates(source, linked_only=False, targets=[None]):
        directory = f"vendor/{package['name']}-{package['version']}"
        license, names = debian_license(license_of(package))
        used.update(names)
        authors = [re.sub(r"\s*<[^>]*>", "", a).strip() for a in package.get("authors") or []]
        holders = "\n ".join(a for a in authors if a) or f"the {package['name']} authors"
        stanzas.append(f"Files: {directory}/*\nCopyright: {holders}\nLicense: {license}\n")
        if package["name"] in BUNDLED_C:
            name, version, spdx = c_library(package)
            license, names = debian_license(normal(spdx))
            used.update(names)
            stanzas.append(f"Files: {directory}/{BUNDLED_C[package['name']][2]}/*\n"
                           f"Copyright: the {name} authors\nComment: {name} {version}, compiled into "
                           f"stalld by libbpf-sys\nLicense: {license}\n")
    used.discard("GPL-2+")
    for license in sorted(used):
        text = LICENSE_TEXTS.get(license)
        if text is None:
            sys.exit(f"bundled.py: no text for license {license}: add it to LICENSE_TEXTS")
        stanzas.append(f"License: {license}\n{text}\n")
    return "\n".join(stanzas)


def common(name, file):
    return (f" On Debian systems, the complete text of the {name} can be found in\n"
            f" \"/usr/share/common-licenses/{file}\".")


LICENSE_TEXTS = {
    "Apache-2.0": common("Apache License, Version 2.0", "Apache-2.0"),
    "Apache-2.0 with LLVM exception": common("Apache License, Version 2.0", "Apache-2.0") + """
 .
 ---- LLVM Exceptions to the Apache 2.0 License ----
 .
 As an exception, if, as a result of your compiling your source code, portions of this
 Software are embedded into an Object form of such source code, you may redistribute such
 embedded portions in such Object form without complying with the conditions of Sections
 4(a), 4(b) and 4(d) of the License.
 .
 In addition, if you combine or link compiled forms of this Software with software that is
 licensed under the GPLv2 ("Combined Software") and if a court of competent jurisdiction
 determines that the patent provision (Section 3), the indemnity provision (Section 9) or
 other Section of the License conflicts with the conditions of the GPLv2, you may
 retroactively and prospectively choose to deem waived or otherwise exclude such Section(s)
 of the License, but only in their entirety and only with respect to the Combined Software.""",
    "GPL-2": common("GNU General Public License version 2", "GPL-2"),
    "LGPL-2.1": common("GNU Lesser General Public License version 2.1", "LGPL-2.1"),
    "LGPL-2.1+": common("GNU Lesser General Public License version 2.1", "LGPL-2.1"),
    "LGPL-3+": common("GNU Lesser General Public License version 3", "LGPL-3"),
    "MPL-2.0": common("Mozilla Public License 2.0", "MPL-2.0"),
    "Expat": """ Permission is hereby granted, free of charge, to any person obtaining a copy of this
 software and associated documentation files (the "Software"), to deal in the Software
 without restriction, including without limitation the rights to use, copy, modify, merge,
 publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
 to whom the Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or
 substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
 INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
 PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
 FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
 OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
 DEALINGS IN THE SOFTWARE.""",
    "BSD-2-clause": """ Redistribution and use in source and binary forms, with or without modification, are
 permitted provided that the following conditions are met:
 .
 1. Redistributions of source code must retain the above copyright notice, this list of
    conditions and the following disclaimer.
 2. Redistributions in binary form must reproduce the above copyright notice, this list of
    conditions and the following disclaimer in the documentation and/or other materials
    provided with the distribution.
 .
 THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS
 OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF
 MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE
 COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL,
 EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF
 SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION)
 HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR
 TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS
 SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.""",
    "Zlib": """ This software is provided 'as-is', without any express or implied warranty. In no event
 will the authors be held liable for any damages arising from the use of this software.
 .
 Permission is granted to anyone to use this software for any purpose, including commercial
 applications, and to alter it and redistribute it freely, subject to the following
 restrictions:
 .
 1. The origin of this software must not be misrepresented; you must not claim that you
    wrote the original software. If you use this software in a product, an acknowledgment
    in the product documentation would be appreciated but is not required.
 2. Altered source versions must be plainly marked as such, and must not be misrepresented
    as being the original software.
 3. This notice may not be removed or altered from any source distribution.""",
    "Unlicense": """ This is free and unencumbered software released into the public domain.
 .
 Anyone is free to copy, modify, publish, use, compile, sell, or distribute this software,
 either in source code form or as a compiled binary, for any purpose, commercial or
 non-commercial, and by any means.
 .
 In jurisdictions that recognize copyright laws, the author or authors of this software
 dedicate any and all copyright interest in the software to the public domain. We make this
 dedication for the benefit of the public at large and to the detriment of our heirs and
 successors. We intend this dedication to be an overt act of relinquishment in perpetuity
 of all present and future rights to this software under copyright law.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
 INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
 PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS BE LIABLE FOR ANY CLAIM, DAMAGES
 OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT
 OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.""",
    "Unicode-3.0": """ UNICODE LICENSE V3
 .
 Permission is hereby granted, free of charge, to any person obtaining a copy of data files
 and any associated documentation (the "Data Files") or software and any associated
 documentation (the "Software") to deal in the Data Files or Software without restriction,
 including without limitation the rights to use, copy, modify, merge, publish, distribute,
 and/or sell copies of the Data Files or Software, and to permit persons to whom the Data
 Files or Software are furnished to do so, provided that either (a) this copyright and
 permission notice appear with all copies of the Data Files or Software, or (b) this
 copyright and permission notice appear in associated Documentation.
 .
 THE DATA FILES AND SOFTWARE ARE PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A
 PARTICULAR PURPOSE AND NONINFRINGEMENT OF THIRD PARTY RIGHTS. IN NO EVENT SHALL THE
 COPYRIGHT HOLDER OR HOLDERS INCLUDED IN THIS NOTICE BE LIABLE FOR ANY CLAIM, OR ANY
 SPECIAL INDIRECT OR CONSEQUENTIAL DAMAGES, OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS OF
 USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS
 ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THE DATA FILES OR
 SOFTWARE.
 .
 Except as contained in this notice, the name of a copyright holder shall not be used in
 advertising or otherwise to promote the sale, use or other dealings in these Data Files or
 Software without prior written authorization of the copyright holder.""",
}


def linux_crates(source):
    return "\n".join(f"{p['name']}-{p['version']}" for p in crates(source, linked_only=False))


COMMANDS = {
    "rpm-provides": rpm_provides,
    "rpm-license": rpm_license,
    "debian-copyright": debian_copyright,
    "linux-crates": linux_crates,
}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    print(COMMANDS[sys.argv[1]](sys.argv[2]))
