#!/usr/bin/python3
"""tests/wormhole/tlsproxy.py CERTDIR LISTEN_PORT TARGET_PORT: a TLS front for the local mailbox
server (wss:// tests). Writes a fresh self-signed certificate for localhost / 127.0.0.1 to
CERTDIR/cert.pem (the CA the client is told to trust), then forwards each TLS connection on
127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT in plain TCP. Prints "ready" when listening."""
import asyncio, datetime, ipaddress, os, ssl, sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

certdir, port, target = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
now = datetime.datetime.utcnow()
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256()))
cpath, kpath = os.path.join(certdir, "cert.pem"), os.path.join(certdir, "key.pem")
with open(cpath, "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
with open(kpath, "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cpath, kpath)


async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        w.close()


async def handle(cr, cw):
    try:
        ur, uw = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        cw.close()
        return
    await asyncio.gather(pipe(cr, uw), pipe(ur, cw))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
