#!/usr/bin/python3
"""Generate the Kafka message structs and codec tables from userspace/protocol/schema/*.def.

    gen_messages.py --out DIR SCHEMA.def...

writes DIR/messages.h (one C struct per request, response and nested struct, an `extern const
struct kmsg_desc <struct>_desc` for each, and `enum kapi_key`) and DIR/messages.c (the kfield
tables, the descriptors, kapi_table[] and kapi_find()). The generic walker in
userspace/protocol/codec.c does the actual encoding and decoding.

Schema DSL (indentation = nesting, two spaces per level, '#' starts a comment):

    api 3 Metadata versions 0-12 flex 9
    request
      topics []topic v0+ null 1+
        topic_id uuid v10+
        name string null 10+
      allow_auto_topic_creation bool v4+ default true
    response
      ...

A field line is `name type [vA-B | vA+] [null A+] [default X] [tag N]`.
Types: int8 int16 int32 int64 uint16 bool float64 uuid string bytes records, []int32 []int64
[]string, and []elem: an array of a nested struct whose fields follow, one level deeper; the
struct is named <parent struct>_<elem>. `default` takes an integer (decimal or 0x hex), true,
false, or null (for nullable strings, bytes and arrays). `tag N` makes it a tagged field of the
flexible versions. Stdlib only: the build must not need anything but python3.
"""

import argparse
import os
import re
import sys

INT16_MAX = 32767

# DSL type -> (kfield_type, C type, integer range or None)
SCALARS = {
    "int8": ("KT_INT8", "int8_t", (-(1 << 7), (1 << 7) - 1)),
    "int16": ("KT_INT16", "int16_t", (-(1 << 15), (1 << 15) - 1)),
    "int32": ("KT_INT32", "int32_t", (-(1 << 31), (1 << 31) - 1)),
    "int64": ("KT_INT64", "int64_t", (-(1 << 63), (1 << 63) - 1)),
    "uint16": ("KT_UINT16", "uint16_t", (0, (1 << 16) - 1)),
    "bool": ("KT_BOOL", "bool", None),
    "float64": ("KT_FLOAT64", "double", None),
    "uuid": ("KT_UUID", "struct kuuid", None),
    "string": ("KT_STRING", "struct kstr", None),
    "bytes": ("KT_BYTES", "struct kbytes", None),
    "records": ("KT_RECORDS", "struct kbytes", None),
}
PRIMITIVE_ARRAY_ELEMS = ("int32", "int64", "string")
NULLABLE_TYPES = ("string", "bytes", "records")  # plus every array

C_KEYWORDS = set("""auto break case char const continue default do double else enum extern float for
goto if inline int long register restrict return short signed sizeof static struct switch typedef
union unsigned void volatile while _Bool _Complex _Imaginary bool true false""".split())

IDENT = re.compile(r"^[a-z][a-z0-9_]*$")


class SchemaError(Exception):
    pass


class Field:
    def __init__(self, where, name, dsl_type):
        self.where = where
        self.name = name
        self.dsl_type = dsl_type      # as written: "int32", "[]int32", "[]topic"
        self.elem_type = None         # arrays of primitives: "int32", "int64", "string"
        self.struct = None            # arrays of structs: Struct
        self.min_ver = 0
        self.max_ver = INT16_MAX
        self.null_min = INT16_MAX
        self.tag = -1
        self.default = None           # int, bool or "null"

    @property
    def is_array(self):
        return self.dsl_type.startswith("[]")

    def versions_text(self):
        if self.max_ver == INT16_MAX:
            return "v%d+" % self.min_ver
        return "v%d-%d" % (self.min_ver, self.max_ver)


class Struct:
    def __init__(self, cname, where):
        self.cname = cname
        self.where = where
        self.fields = []


class Api:
    def __init__(self, where, key, name, min_ver, max_ver, flex):
        self.where = where
        self.key = key
        self.name = name
        self.min_ver = min_ver
        self.max_ver = max_ver
        self.flex = flex              # first flexible version, INT16_MAX if none
        self.request = None
        self.response = None
        self.structs = []             # every struct of this API, inner before outer


def snake(name):
    """ApiVersions -> api_versions, InitProducerId -> init_producer_id."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return s.lower()


def parse_version(text, where):
    if not re.fullmatch(r"\d+", text):
        raise SchemaError("%s: bad version %r" % (where, text))
    v = int(text)
    if v > INT16_MAX:
        raise SchemaError("%s: version %d too large" % (where, v))
    return v


def parse_int(text, where):
    try:
        return int(text, 0)
    except ValueError:
        raise SchemaError("%s: bad integer %r" % (where, text)) from None


def parse_field(where, tokens):
    if len(tokens) < 2:
        raise SchemaError("%s: a field needs a name and a type" % where)
    name, dsl_type = tokens[0], tokens[1]
    if not IDENT.match(name) or name in C_KEYWORDS:
        raise SchemaError("%s: bad field name %r (snake_case, not a C keyword)" % (where, name))
    f = Field(where, name, dsl_type)
    if f.is_array:
        elem = dsl_type[2:]
        if elem in SCALARS:
            if elem not in PRIMITIVE_ARRAY_ELEMS:
                raise SchemaError("%s: arrays of %s are not supported" % (where, elem))
            f.elem_type = elem
        elif not IDENT.match(elem):
            raise SchemaError("%s: bad element name %r" % (where, elem))
    elif dsl_type not in SCALARS:
        raise SchemaError("%s: unknown type %r" % (where, dsl_type))

    seen = set()
    i = 2
    while i < len(tokens):
        tok = tokens[i]
        opt = tok if tok in ("null", "default", "tag") else "versions"
        if opt in seen:
            raise SchemaError("%s: %s given twice" % (where, opt))
        seen.add(opt)
        if opt == "versions":
            m = re.fullmatch(r"v(\d+)(?:-(\d+)|(\+))", tok)
            if not m:
                raise SchemaError("%s: expected vA-B, vA+, null, default or tag, got %r" % (where, tok))
            f.min_ver = parse_version(m.group(1), where)
            f.max_ver = parse_version(m.group(2), where) if m.group(2) else INT16_MAX
            if f.max_ver < f.min_ver:
                raise SchemaError("%s: empty version range %s" % (where, tok))
            i += 1
            continue
        if i + 1 >= len(tokens):
            raise SchemaError("%s: %s needs a value" % (where, tok))
        val = tokens[i + 1]
        if opt == "null":
            m = re.fullmatch(r"(\d+)\+", val)
            if not m:
                raise SchemaError("%s: expected null A+, got %r" % (where, val))
            f.null_min = parse_version(m.group(1), where)
        elif opt == "tag":
            f.tag = parse_int(val, where)
            if not 0 <= f.tag <= (1 << 31) - 1:
                raise SchemaError("%s: bad tag %r" % (where, val))
        else:
            if val in ("true", "false"):
                f.default = val == "true"
            elif val == "null":
                f.default = "null"
            else:
                f.default = parse_int(val, where)
        i += 2
    return f


def check_field(api, f):
    """Catch schema typos here rather than as wrong bytes on the wire."""
    where = f.where
    base = f.dsl_type
    if f.null_min != INT16_MAX and not (f.is_array or base in NULLABLE_TYPES):
        raise SchemaError("%s: %s cannot be nullable" % (where, base))
    if f.min_ver > api.max_ver:
        raise SchemaError("%s: %s starts after the API's last version %d" % (where, f.name, api.max_ver))
    if f.default is not None:
        d = f.default
        if d == "null":
            if f.null_min == INT16_MAX:
                raise SchemaError("%s: default null on a field that is never nullable" % where)
        elif base == "bool":
            if not isinstance(d, bool):
                raise SchemaError("%s: a bool default is true or false" % where)
        elif base in SCALARS and SCALARS[base][2]:
            lo, hi = SCALARS[base][2]
            if isinstance(d, bool) or not lo <= d <= hi:
                raise SchemaError("%s: default %r does not fit %s" % (where, d, base))
        elif base != "float64" or isinstance(d, bool):
            raise SchemaError("%s: %s takes no default but null" % (where, base))
    if f.tag >= 0:
        if f.min_ver < api.flex:
            raise SchemaError("%s: tagged field %s exists before the first flexible version" % (where, f.name))


def parse_file(path):
    """Returns the Api described by one .def file."""
    api = None
    section = None        # the Struct of "request" or "response"
    stack = []            # (indent, Struct) of the structs being filled
    last_field = None
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    for lineno, raw in enumerate(lines, 1):
        where = "%s:%d" % (path, lineno)
        text = raw.split("#", 1)[0].rstrip()
        if not text.strip():
            continue
        if "\t" in text:
            raise SchemaError("%s: tabs are not allowed, indent with two spaces" % where)
        indent = len(text) - len(text.lstrip(" "))
        tokens = text.split()
        if indent == 0:
            if tokens[0] == "api":
                if api or len(tokens) not in (5, 7) or tokens[3] != "versions" \
                        or (len(tokens) == 7 and tokens[5] != "flex"):
                    raise SchemaError("%s: expected 'api KEY Name versions A-B [flex N]' once" % where)
                m = re.fullmatch(r"(\d+)-(\d+)", tokens[4])
                if not m or not re.fullmatch(r"[A-Z][A-Za-z0-9]*", tokens[2]):
                    raise SchemaError("%s: bad api line" % where)
                flex = parse_version(tokens[6], where) if len(tokens) == 7 else INT16_MAX
                api = Api(where, parse_int(tokens[1], where), tokens[2],
                          parse_version(m.group(1), where), parse_version(m.group(2), where), flex)
            elif tokens == ["request"] or tokens == ["response"]:
                if not api or getattr(api, tokens[0]):
                    raise SchemaError("%s: %s before the api line or given twice" % (where, tokens[0]))
                section = Struct("%s_%s" % (snake(api.name), tokens[0]), where)
                setattr(api, tokens[0], section)
                stack = [(2, section)]
                last_field = None
            else:
                raise SchemaError("%s: expected api, request or response" % where)
            continue
        if section is None:
            raise SchemaError("%s: field outside request/response" % where)
        if indent % 2:
            raise SchemaError("%s: odd indentation" % where)
        if indent > stack[-1][0]:
            # One level deeper: the fields of the struct array declared on the line before.
            if indent != stack[-1][0] + 2 or not last_field or not last_field.is_array \
                    or last_field.elem_type or last_field.struct:
                raise SchemaError("%s: unexpected indentation" % where)
            struct = Struct("%s_%s" % (stack[-1][1].cname, last_field.dsl_type[2:]), where)
            last_field.struct = struct
            stack.append((indent, struct))
        while indent < stack[-1][0]:
            stack.pop()
        if indent != stack[-1][0]:
            raise SchemaError("%s: indentation does not match any open struct" % where)
        last_field = parse_field(where, tokens)
        stack[-1][1].fields.append(last_field)
    if not api or not api.request or not api.response:
        raise SchemaError("%s: needs an api line, a request and a response" % path)
    if not api.min_ver <= api.max_ver:
        raise SchemaError("%s: empty version range" % api.where)
    for top in (api.request, api.response):
        collect_structs(api, top)
    return api


def collect_structs(api, struct):
    """Checks a struct tree and lists it, inner structs first (so C sees them defined in order)."""
    names = set()
    tags = set()
    for f in struct.fields:
        if f.is_array and not f.elem_type and not f.struct:
            raise SchemaError("%s: struct array %s has no fields" % (f.where, f.name))
        check_field(api, f)
        for n in (f.name, f.name + "_count") if f.is_array else (f.name,):
            if n in names:
                raise SchemaError("%s: duplicate member %s" % (f.where, n))
            names.add(n)
        if f.tag >= 0:
            if f.tag in tags:
                raise SchemaError("%s: duplicate tag %d" % (f.where, f.tag))
            tags.add(f.tag)
        if f.struct:
            collect_structs(api, f.struct)
    api.structs.append(struct)


def kt(f):
    return "KT_ARRAY" if f.is_array else SCALARS[f.dsl_type][0]


def c_member(f):
    """The C declaration(s) of one field."""
    if f.struct:
        return ["struct %s *%s;" % (f.struct.cname, f.name), "int32_t %s_count;" % f.name]
    if f.elem_type:
        return ["%s *%s;" % (SCALARS[f.elem_type][1], f.name), "int32_t %s_count;" % f.name]
    return ["%s %s;" % (SCALARS[f.dsl_type][1], f.name)]


def field_comment(f):
    parts = [f.versions_text()]
    if f.null_min != INT16_MAX:
        parts.append("null %d+" % f.null_min)
    if f.default is not None:
        d = f.default
        parts.append("default " + (("true" if d else "false") if isinstance(d, bool) else str(d)))
    if f.tag >= 0:
        parts.append("tag %d" % f.tag)
    return ", ".join(parts)


def default_int(f):
    d = f.default
    if d is None:
        return 0
    if d == "null":
        return -1      # strings, bytes and arrays: -1 = null by default
    return int(d)


def c_int(v):
    # INT64_MIN has no literal form in C.
    if v == -(1 << 63):
        return "INT64_MIN"
    if v < -(1 << 31) or v > (1 << 31) - 1:
        return "INT64_C(%d)" % v
    if v == -(1 << 31):
        return "INT32_MIN"
    return str(v)


def c_ver(v):
    return "INT16_MAX" if v == INT16_MAX else str(v)


def emit_header(apis):
    out = ["/* Generated by tools/gen_messages.py from the userspace/protocol/schema .def files: do not edit. */",
           "#ifndef SLUICE_MESSAGES_H", "#define SLUICE_MESSAGES_H", "",
           "#include <stdbool.h>", "#include <stddef.h>", "#include <stdint.h>", "",
           '#include "protocol/codec.h"', "",
           "enum kapi_key {"]
    for api in apis:
        out.append("    KAPI_%s = %d," % (snake(api.name).upper(), api.key))
    out += ["};", ""]
    for api in apis:
        flex = "flexible from v%d" % api.flex if api.flex != INT16_MAX else "never flexible"
        out.append("/* %s (key %d): v%d-%d, %s */" % (api.name, api.key, api.min_ver, api.max_ver, flex))
        for s in api.structs:
            out.append("struct %s {" % s.cname)
            if not s.fields:
                out.append("    uint8_t unused_; /* no fields: C wants at least one member */")
            for f in s.fields:
                decls = c_member(f)
                for i, d in enumerate(decls):
                    out.append("    %s%s" % (d, " /* %s */" % field_comment(f) if i == 0 else ""))
            out.append("};")
            out.append("extern const struct kmsg_desc %s_desc;" % s.cname)
            out.append("")
    out += ["extern const struct kapi kapi_table[];", "extern const size_t kapi_table_len;", "",
            "#endif", ""]
    return "\n".join(out)


def emit_source(apis):
    out = ["/* Generated by tools/gen_messages.py from the userspace/protocol/schema .def files: do not edit. */",
           '#include "messages.h"', ""]
    for api in apis:
        for s in api.structs:
            # The codec writes tagged fields in table order, so the table lists them by ascending tag.
            regular = [f for f in s.fields if f.tag < 0]
            tagged = sorted((f for f in s.fields if f.tag >= 0), key=lambda f: f.tag)
            ordered = regular + tagged
            if ordered:
                out.append("static const struct kfield %s_fields[] = {" % s.cname)
                for f in ordered:
                    items = ['.name = "%s"' % f.name, ".type = %s" % kt(f),
                             ".min_ver = %s" % c_ver(f.min_ver), ".max_ver = %s" % c_ver(f.max_ver),
                             ".null_min_ver = %s" % c_ver(f.null_min), ".tag = %d" % f.tag,
                             ".offset = offsetof(struct %s, %s)" % (s.cname, f.name)]
                    if f.is_array:
                        items.append(".count_offset = offsetof(struct %s, %s_count)" % (s.cname, f.name))
                    if default_int(f):
                        items.append(".default_int = %s" % c_int(default_int(f)))
                    if f.elem_type:
                        items.append(".elem_type = %s" % SCALARS[f.elem_type][0])
                    if f.struct:
                        items.append(".elem = &%s_desc" % f.struct.cname)
                    out.append("    { %s }," % ", ".join(items))
                out.append("};")
            out.append("const struct kmsg_desc %s_desc = {" % s.cname)
            out.append('    .name = "%s", .size = sizeof(struct %s), .nfields = %d, .fields = %s,'
                       % (s.cname, s.cname, len(ordered), "%s_fields" % s.cname if ordered else "NULL"))
            out.append("};")
            out.append("")
    out.append("const struct kapi kapi_table[] = {")
    for api in apis:
        out.append('    { .key = %d, .name = "%s", .min_ver = %d, .max_ver = %d, .flex_min = %s,'
                   % (api.key, api.name, api.min_ver, api.max_ver, c_ver(api.flex)))
        out.append("      .request = &%s_desc, .response = &%s_desc },"
                   % (api.request.cname, api.response.cname))
    out += ["};", "const size_t kapi_table_len = sizeof(kapi_table) / sizeof(kapi_table[0]);", "",
            "const struct kapi *kapi_find(int16_t key)", "{",
            "    for (size_t i = 0; i < kapi_table_len; i++)",
            "        if (kapi_table[i].key == key)",
            "            return &kapi_table[i];",
            "    return NULL;", "}", ""]
    return "\n".join(out)


def write_file(path, text):
    """Write through a temporary file so an interrupted run never leaves half a file behind."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="directory for messages.h and messages.c")
    ap.add_argument("schemas", nargs="+", help="schema .def files")
    args = ap.parse_args()
    try:
        apis = [parse_file(p) for p in args.schemas]
        seen = {}
        for api in apis:
            for other, what in ((seen.get(("key", api.key)), "key"), (seen.get(("name", api.name)), "name")):
                if other:
                    raise SchemaError("%s: api %s also used by %s" % (api.where, what, other.where))
            seen[("key", api.key)] = seen[("name", api.name)] = api
        apis.sort(key=lambda a: a.key)
    except (SchemaError, OSError) as e:
        print("gen_messages: %s" % e, file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    write_file(os.path.join(args.out, "messages.h"), emit_header(apis))
    write_file(os.path.join(args.out, "messages.c"), emit_source(apis))
    return 0


if __name__ == "__main__":
    sys.exit(main())
