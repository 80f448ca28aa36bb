#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses (fuzz/corpus/<harness>/) from the
repository's real inputs (examples/, configs/, data/), trimmed, plus broken variants:
truncated files, wrong magic, huge declared sizes, NaN fields, negative counts. Standard
library only; rerun after changing it (the corpus files are committed)."""
import io
import os
import struct
import zipfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def write(harness, name, data):
    if isinstance(data, str):
        data = data.encode()
    path = os.path.join(OUT, harness, name)
    with open(path, "wb") as f:
        f.write(data)


def read(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


# --- .npy / .npz ---------------------------------------------------------------------------
def npy(descr, shape, payload, fortran=False, version=1, header=None):
    if header is None:
        dims = ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "")
        header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (
            descr, "True" if fortran else "False", dims)
    lensize = 2 if version == 1 else 4
    pad = (64 - (8 + lensize + len(header) + 1) % 64) % 64
    header = header + " " * pad + "\n"
    length = struct.pack("<H" if version == 1 else "<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + length + header.encode("latin-1") + payload


def zip_bytes(members, method=zipfile.ZIP_STORED):
    """A zip archive of (name, bytes) members with fixed timestamps (reproducible)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            z.writestr(info, data)
    return buffer.getvalue()


def doubles(values):
    return struct.pack("<%dd" % len(values), *values)


square = [0, 0, 4, 0, 4, 4, 0, 4]  # examples/dw4.xyz, first frame
good_f8 = npy("<f8", (1, 4, 2), doubles(square))
write("npy", "dw4-f8.npy", good_f8)
write("npy", "dw4-f4-fortran.npy",
      npy("<f4", (4, 2), struct.pack("<8f", 0, 4, 4, 0, 0, 0, 4, 4), fortran=True))
write("npy", "int64-v2.npy", npy("<i8", (3,), struct.pack("<3q", 1, -2, 3), version=2))
write("npy", "int32-scalar-v3.npy", npy("<i4", (), struct.pack("<i", 7), version=3))
write("npy", "empty.npy", npy("<f8", (0, 4, 2), b""))
write("npy", "nan.npy", npy("<f8", (4, 2), doubles([float("nan")] + square[1:])))
write("npy", "truncated.npy", good_f8[:-5])
write("npy", "bad-magic.npy", b"\x93NUMPX" + good_f8[6:])
write("npy", "huge-shape.npy", npy("<f8", (1 << 40, 1 << 40, 2), doubles(square)))
write("npy", "overflow-shape.npy", npy("<f8", (99999999999999999999, 2), doubles(square)))
write("npy", "negative-shape.npy", npy("<f8", (-4, 2), doubles(square)))
write("npy", "big-endian.npy", npy(">f8", (4, 2), struct.pack(">8d", *square)))
write("npy", "huge-header-length.npy", b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{'descr'")
write("npy", "sample.npz", zip_bytes([("positions.npy", good_f8),
                                      ("log_w.npy", npy("<f8", (1,), doubles([0.0])))]))
compressed = zip_bytes([("positions.npy", npy("<f4", (2, 1, 4, 2), struct.pack("<16f", *(square * 2))))],
                       zipfile.ZIP_DEFLATED)
write("npy", "md-compressed.npz", compressed)
write("npy", "truncated.npz", compressed[:-30])
write("npy", "empty-trajectory.npz", zip_bytes([("positions.npy", npy("<f8", (0, 3, 4, 2), b""))]))

# --- XYZ -----------------------------------------------------------------------------------
write("xyz", "dw4.xyz", read("examples/dw4.xyz"))
write("xyz", "lj13-icosahedron.xyz", read("examples/lj13-icosahedron.xyz"))
write("xyz", "crlf.xyz", "4\r\ncomment\r\nA 0 0 0\r\nA 4 0 0\r\nA 4 4 0\r\nA 0 4 0\r\n")
write("xyz", "nan.xyz", "4\n\nA nan 0 0\nA 4 inf 0\nA 4 4 0\nA 0 4 -nan\n")
write("xyz", "negative-count.xyz", "-4\n\nA 0 0 0\n")
write("xyz", "huge-count.xyz", "99999999999999999999\n\nA 0 0 0\n")
write("xyz", "truncated.xyz", "4\ncomment\nA 0 0 0\nA 4 0")
write("xyz", "mixed-frames.xyz", "1\n\nA 0 0 0\n2\n\nA 0 0 0\nA 1 1 1\n")

# --- PDB -----------------------------------------------------------------------------------
pdb = read("data/alanine-dipeptide/ala2.pdb").decode().splitlines(keepends=True)
atoms = [l for l in pdb if l.startswith(("ATOM", "HETATM"))]
write("pdb", "ala2-first-residue.pdb", "".join(pdb[:1] + atoms[:6]) + "END\n")
write("pdb", "two-models.pdb",
      "MODEL        1\n" + "".join(atoms[:3]) + "ENDMDL\nMODEL        2\n" + "".join(atoms[:3]) + "ENDMDL\n")
write("pdb", "hetatm-no-element.pdb",
      "HETATM    1  O   HOH W   1       0.000   0.000   0.000\n"
      "HETATM    2 1HB  HOH W   1       0.957   0.000   0.000\n")
write("pdb", "short-record.pdb", "ATOM      1  N   ALA A   1       1.000   2.0\n")
write("pdb", "nan-coordinate.pdb", atoms[0][:30] + "     nan     inf  -1e999" + atoms[0][54:])
write("pdb", "bad-number.pdb", atoms[0][:30] + "   1.0x0   2.000   3.000" + atoms[0][54:])

# --- TOML run configurations ---------------------------------------------------------------
def strip_comments(text):
    return "".join(l.split("#")[0].rstrip() + "\n" for l in text.splitlines() if l.split("#")[0].strip())

write("config", "dw4.toml", strip_comments(read("configs/dw4.toml").decode()))
write("config", "ala2.toml", strip_comments(read("configs/ala2.toml").decode()))
write("config", "lj13.toml", strip_comments(read("configs/lj13.toml").decode()))
write("config", "minimal.toml", 'system = "dw4"\n')
write("config", "nan-values.toml", 'system = "dw4"\ntemperature = nan\n[prior]\nradius = inf\nkappa = -inf\n')
write("config", "huge-integers.toml", 'system = "dw4"\nthreads = 4294967297\nseed = -1\n[mint]\nsteps = 9223372036854775807\n')
write("config", "wrong-types.toml", 'system = 4\nframe = [1, "2"]\n[prior]\ncomponents = 1.5\n[anneal]\nsteps = true\n')
write("config", "broken.toml", 'system = "dw4\n[prior\nkappa = = 1\n')

# --- OpenMM System XML ---------------------------------------------------------------------
# A water-like molecule with every supported force, in the layout OpenMM 7.7 serializes.
def system(particles, forces, constraints="<Constraints/>"):
    return ('<?xml version="1.0" ?>\n<System openmmVersion="7.7" type="System" version="1">\n'
            '<PeriodicBoxVectors><A x="2" y="0" z="0"/><B x="0" y="2" z="0"/><C x="0" y="0" z="2"/></PeriodicBoxVectors>\n'
            "<Particles>" + "".join('<Particle mass="%s"/>' % m for m in particles) + "</Particles>\n"
            + constraints + "\n<Forces>\n" + forces + "</Forces>\n</System>\n")

bond = ('<Force forceGroup="0" name="HarmonicBondForce" type="HarmonicBondForce" usesPeriodic="0" version="2">'
        '<Bonds><Bond d=".0957" k="462750" p1="0" p2="1"/><Bond d=".0957" k="462750" p1="0" p2="2"/></Bonds></Force>\n')
angle = ('<Force forceGroup="0" name="HarmonicAngleForce" type="HarmonicAngleForce" usesPeriodic="0" version="2">'
         '<Angles><Angle a="1.824" k="836.8" p1="1" p2="0" p3="2"/></Angles></Force>\n')
torsion = ('<Force forceGroup="0" name="PeriodicTorsionForce" type="PeriodicTorsionForce" usesPeriodic="0" version="2">'
           '<Torsions><Torsion k="4.6" p1="1" p2="0" p3="2" p4="1" periodicity="2" phase="3.14159"/></Torsions></Force>\n')
nonbonded = ('<Force alpha="0" cutoff="1" dispersionCorrection="1" ewaldTolerance=".0005" exceptionsUsePeriodic="0" '
             'forceGroup="0" includeDirectSpace="1" ljAlpha="0" ljnx="0" ljny="0" ljnz="0" method="0" '
             'name="NonbondedForce" nx="0" ny="0" nz="0" recipForceGroup="-1" rfDielectric="1" switchingDistance="-1" '
             'type="NonbondedForce" useSwitchingFunction="0" version="4"><GlobalParameters/><ParticleOffsets/>'
             '<ExceptionOffsets/><Particles><Particle eps=".6364" q="-.834" sig=".315"/><Particle eps="0" q=".417" sig="1"/>'
             '<Particle eps="0" q=".417" sig="1"/></Particles><Exceptions><Exception eps="0" p1="0" p2="1" q="0" sig="1"/>'
             '<Exception eps="0" p1="0" p2="2" q="0" sig="1"/></Exceptions></Force>\n')
gbsa = ('<Force cutoff="1" forceGroup="0" method="0" name="GBSAOBCForce" soluteDielectric="1" solventDielectric="78.3" '
        'surfaceAreaEnergy="2.25936" type="GBSAOBCForce" version="2"><Particles><Particle q="-.834" r=".152" scale=".85"/>'
        '<Particle q=".417" r=".12" scale=".85"/><Particle q=".417" r=".12" scale=".85"/></Particles></Force>\n')
cmm = '<Force forceGroup="0" frequency="1" name="CMMotionRemover" type="CMMotionRemover" version="1"/>\n'
masses = ["15.99943", "1.007947", "1.007947"]
write("openmm", "water-all-forces.xml", system(masses, bond + angle + torsion + nonbonded + gbsa + cmm))
write("openmm", "water-vacuum.xml", system(masses, bond + angle + nonbonded))
write("openmm", "bond-index-out-of-range.xml", system(masses, bond.replace('p2="2"', 'p2="7"')))
write("openmm", "negative-index.xml", system(masses, angle.replace('p3="2"', 'p3="-1"')))
write("openmm", "nan-parameters.xml", system(masses, bond.replace('k="462750"', 'k="nan"', 1) + gbsa.replace('r=".12"', 'r="inf"', 1)))
write("openmm", "zero-mass.xml", system(["0", "1", "-1"], ""))
write("openmm", "constraints.xml", system(masses, bond, '<Constraints><Constraint d=".0957" p1="0" p2="1"/></Constraints>'))
write("openmm", "truncated.xml", system(masses, bond + angle)[:700])
write("openmm", "not-xml.xml", "<System openmmVersion=\"7.7\" type=\"System\" version=\"1\"><Particles><Particle mass=")
