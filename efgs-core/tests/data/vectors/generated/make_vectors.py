#!/usr/bin/env python3
"""Generates extra (non-Java) test vectors for the EFGS re-implementation.
Everything here is produced with OpenSSL + Python, following the behaviour
documented in docs/protocol.md of efgs-rs. Private keys are written to a temp dir
and deleted; only public material, signatures and payloads are kept."""
import base64, struct, subprocess, tempfile, os, hashlib, json

OUT = os.path.dirname(os.path.abspath(__file__))

def b64(x): return base64.b64encode(x).decode()
def i32(v): return b64(struct.pack('>I', v & 0xffffffff))

def canon_key(k):
    parts = [b64(k['keyData']), i32(k['rollingStartIntervalNumber']), i32(k['rollingPeriod']),
             i32(k['transmissionRiskLevel']), b64(",".join(k['visitedCountries']).encode('ascii')),
             b64(k['origin'].encode('ascii')), i32(k['reportType']), i32(k['daysSinceOnsetOfSymptoms'])]
    return (".".join(parts) + ".").encode('ascii')

def canon_batch(keys):
    return b"".join(sorted((canon_key(k) for k in keys), key=lambda c: b64(c)))

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7f; n >>= 7
        if n: out.append(b | 0x80)
        else: out.append(b); return bytes(out)

def field_varint(no, v):   # omitted when default (proto3)
    return b"" if v == 0 else varint(no << 3) + varint(v)
def field_bytes(no, v):
    return b"" if len(v) == 0 else varint((no << 3) | 2) + varint(len(v)) + v
def zigzag(n): return ((n << 1) ^ (n >> 31)) & 0xffffffff

def proto_key(k):
    out = field_bytes(1, k['keyData'])
    out += field_varint(2, k['rollingStartIntervalNumber'] & 0xffffffff)
    out += field_varint(3, k['rollingPeriod'] & 0xffffffff)
    out += field_varint(4, k['transmissionRiskLevel'])          # int32: negative -> 10-byte varint
    for c in k['visitedCountries']:
        out += varint((5 << 3) | 2) + varint(len(c)) + c.encode()
    out += field_bytes(6, k['origin'].encode())
    out += field_varint(7, k['reportType'])
    out += field_varint(8, zigzag(k['daysSinceOnsetOfSymptoms']))
    return out

def proto_batch(keys):
    return b"".join(field_bytes(1, proto_key(k)) for k in keys)

def sh(*a, **kw):
    return subprocess.run(a, check=True, capture_output=True, **kw).stdout

KEYS = [
    dict(keyData=bytes([14,15,11,14,12,15,15,16,14,15,11,14,12,15,15,16]), rollingStartIntervalNumber=2,
         rollingPeriod=1, transmissionRiskLevel=3, visitedCountries=["DE","FR","PL"], origin="DE",
         reportType=2, daysSinceOnsetOfSymptoms=42),
    dict(keyData=bytes(range(16)), rollingStartIntervalNumber=2700000, rollingPeriod=144,
         transmissionRiskLevel=0x7fffffff, visitedCountries=[], origin="DE", reportType=1,
         daysSinceOnsetOfSymptoms=-14),
    dict(keyData=bytes(range(16, 32)), rollingStartIntervalNumber=2700144, rollingPeriod=144,
         transmissionRiskLevel=8, visitedCountries=["NL","BE","AT","IE"], origin="DE", reportType=5,
         daysSinceOnsetOfSymptoms=0),
]


RT_NAMES = ["UNKNOWN", "CONFIRMED_TEST", "CONFIRMED_CLINICAL_DIAGNOSIS", "SELF_REPORT", "RECURSIVE", "REVOKED"]

def java_json_key(k):
    """JSON as printed by the Java service (protobuf-java-format JsonFormat + ProtobufConverter)."""
    f = []
    if k['keyData']: f.append('"keyData": "%s"' % b64(k['keyData']))
    if k['rollingStartIntervalNumber']: f.append('"rollingStartIntervalNumber": %d' % (k['rollingStartIntervalNumber'] & 0xffffffff))
    if k['rollingPeriod']: f.append('"rollingPeriod": %d' % (k['rollingPeriod'] & 0xffffffff))
    if k['transmissionRiskLevel']: f.append('"transmissionRiskLevel": %d' % k['transmissionRiskLevel'])
    if k['visitedCountries']: f.append('"visitedCountries": [%s]' % ",".join('"%s"' % c for c in k['visitedCountries']))
    if k['origin']: f.append('"origin": "%s"' % k['origin'])
    if k['reportType']: f.append('"reportType": "%s"' % RT_NAMES[k['reportType']])
    if k['daysSinceOnsetOfSymptoms']: f.append('"days_since_onset_of_symptoms": %d' % k['daysSinceOnsetOfSymptoms'])
    return "{" + ",".join(f) + "}"

def java_json_batch(keys):
    return "{}" if not keys else '{"keys": [' + ",".join(java_json_key(k) for k in keys) + "]}"

def main():
    canon = canon_batch(KEYS)
    pb = proto_batch(KEYS)
    with open(os.path.join(OUT, "batch3.canonical.txt"), "wb") as f: f.write(canon)
    with open(os.path.join(OUT, "batch3.pb"), "wb") as f: f.write(pb)
    summary = {"batch3": {
        "keys": [{**k, "keyData": b64(k['keyData'])} for k in KEYS],
        "protobuf_file": "batch3.pb", "protobuf_sha256": hashlib.sha256(pb).hexdigest(),
        "canonical_file": "batch3.canonical.txt", "canonical_sha256": hashlib.sha256(canon).hexdigest(),
        "per_key_canonical": [canon_key(k).decode() for k in KEYS],
        "java_json": java_json_batch(KEYS),
        "per_key_payload_hash_java": [format(int(hashlib.sha256(canon_key(k)).hexdigest(), 16), 'x') for k in KEYS],
    }}
    with tempfile.TemporaryDirectory() as tmp:
        p = lambda n: os.path.join(tmp, n)
        # Certificates are built with python-cryptography so that notBefore/notAfter are fixed
        # (2020-01-01 .. 2120-01-01) and the vectors do not depend on the generating machine's clock.
        from cryptography import x509
        from cryptography.x509.oid import NameOID
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa, ec
        import datetime
        nb = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
        na = datetime.datetime(2120, 1, 1, tzinfo=datetime.timezone.utc)
        def make(name, key, c, o, cn):
            subj = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, c),
                              x509.NameAttribute(NameOID.ORGANIZATION_NAME, o),
                              x509.NameAttribute(NameOID.COMMON_NAME, cn)])
            cert = (x509.CertificateBuilder().subject_name(subj).issuer_name(subj).public_key(key.public_key())
                    .serial_number(x509.random_serial_number()).not_valid_before(nb).not_valid_after(na)
                    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                    .sign(key, hashes.SHA256()))
            open(p(name + ".key"), "wb").write(key.private_bytes(serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
            open(p(name + ".pem"), "wb").write(cert.public_bytes(serialization.Encoding.PEM))
        rsa_key = lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ec_key = lambda: ec.generate_private_key(ec.SECP256R1())
        make("ta", rsa_key(), "DE", "TrustAnchor Test Org", "EFGS-TrustAnchor TEST")
        certs = {}
        for name, key, c, cn in [
            ("auth_de_rsa", rsa_key(), "DE", "auth-de"),
            ("sign_de_rsa", rsa_key(), "DE", "sign-de-rsa"),
            ("sign_de_ec", ec_key(), "DE", "sign-de-ec"),
            ("sign_nl_ec", ec_key(), "NL", "sign-nl-ec"),
        ]:
            make(name, key, c, "Test Org", cn)
            pem = open(p(name + ".pem"), "rb").read()
            der = sh("openssl", "x509", "-in", p(name + ".pem"), "-outform", "DER")
            ta_sig = sh("openssl", "dgst", "-sha256", "-sign", p("ta.key"), p(name + ".pem"))
            certs[name] = dict(pem=pem.decode(), thumbprint=hashlib.sha256(der).hexdigest(),
                               thumbprint_b64=b64(hashlib.sha256(der).digest()), ta_signature=b64(ta_sig))
        summary["trust_anchor_pem"] = open(p("ta.pem")).read()
        summary["certificates"] = certs
        # CMS detached signatures over the canonical bytes
        with open(p("canon.bin"), "wb") as f: f.write(canon)
        sigs = {}
        for name in ["sign_de_rsa", "sign_de_ec", "sign_nl_ec"]:
            der = sh("openssl", "cms", "-sign", "-binary", "-in", p("canon.bin"), "-signer", p(name + ".pem"),
                     "-inkey", p(name + ".key"), "-md", "sha256", "-outform", "DER")
            sigs[name] = b64(der)
        # variant without signed attributes (raw signature over content digest)
        der = sh("openssl", "cms", "-sign", "-binary", "-noattr", "-in", p("canon.bin"), "-signer", p("sign_de_rsa.pem"),
                 "-inkey", p("sign_de_rsa.key"), "-md", "sha256", "-outform", "DER")
        sigs["sign_de_rsa_noattr"] = b64(der)
        # variant without embedded certificate
        der = sh("openssl", "cms", "-sign", "-binary", "-nocerts", "-in", p("canon.bin"), "-signer", p("sign_de_ec.pem"),
                 "-inkey", p("sign_de_ec.key"), "-md", "sha256", "-outform", "DER")
        sigs["sign_de_ec_nocerts"] = b64(der)
        # signature over wrong data (canonical bytes of the first key only)
        with open(p("wrong.bin"), "wb") as f: f.write(canon_key(KEYS[0]))
        der = sh("openssl", "cms", "-sign", "-binary", "-in", p("wrong.bin"), "-signer", p("sign_de_ec.pem"),
                 "-inkey", p("sign_de_ec.key"), "-md", "sha256", "-outform", "DER")
        sigs["sign_de_ec_wrong_content"] = b64(der)
        summary["batch3"]["signatures"] = sigs
        summary["batch3"]["expected"] = {
            "sign_de_rsa": "valid if sign_de_rsa is registered as SIGNING/DE with valid TA signature; returns its thumbprint",
            "sign_de_ec": "valid if sign_de_ec is registered as SIGNING/DE",
            "sign_nl_ec": "invalid: cert country NL != key origin DE (and lookup is by NL)",
            "sign_de_rsa_noattr": "valid (no signed attributes; signature directly over content digest)",
            "sign_de_ec_nocerts": "invalid: no certificate in SignedData matches the SignerInfo",
            "sign_de_ec_wrong_content": "invalid: signature is over different bytes",
        }
    with open(os.path.join(OUT, "vectors.json"), "w") as f:
        json.dump(summary, f, indent=2)

if __name__ == "__main__":
    main()
