#!/bin/sh
# certs.sh DIR -- make the certificates tests/unit/test_https.c needs, with
# the openssl CLI, into DIR (which must exist):
#
#   ca.pem ca.key           test CA (RSA 2048, cA:TRUE), trusted by the tests
#   localhost.pem/.key      EC P-256 server cert for DNS:localhost, by the CA
#   rsa.pem/.key            RSA 2048 server cert for DNS:localhost, by the CA
#   expired.pem             localhost (same key as localhost.key), by the CA,
#                           valid 2020-01-01 .. 2020-01-02 only
#   other.pem               DNS:other.example (localhost.key), by the CA
#   self.pem/.key           self-signed EC cert for DNS:localhost (untrusted)
#
# `openssl ca` with -startdate/-enddate makes the expired certificate (no
# faketime needed; OpenSSL 3.0's `x509 -req` has no -not_after).
# Exit status: 0, or openssl's on failure (its output on stderr).
set -eu
d=$1
cd "$d"

q() { "$@" >/dev/null 2>openssl.err || { cat openssl.err >&2; exit 1; }; }

q openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem \
    -days 30 -subj /CN=appd-test-ca \
    -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign

q openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout localhost.key -out localhost.csr -subj /CN=localhost
q openssl req -new -newkey rsa:2048 -nodes \
    -keyout rsa.key -out rsa.csr -subj /CN=localhost
q openssl req -new -key localhost.key -out other.csr -subj /CN=other.example

mkdir -p db
: > db/index.txt
echo 1000 > db/serial
cat > ca.cnf <<'EOF'
[ca]
default_ca = tca
[tca]
database = db/index.txt
serial = db/serial
new_certs_dir = db
default_md = sha256
policy = pol
unique_subject = no
[pol]
commonName = supplied
[localhost]
subjectAltName = DNS:localhost
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
[other]
subjectAltName = DNS:other.example
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
EOF

sign() { # csr out ext [ca args...]
	csr=$1 out=$2 ext=$3
	shift 3
	q openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key \
	    -in "$csr" -out "$out" -extensions "$ext" -notext "$@"
}
sign localhost.csr localhost.pem localhost -days 30
sign rsa.csr rsa.pem localhost -days 30
sign localhost.csr expired.pem localhost \
    -startdate 20200101000000Z -enddate 20200102000000Z
sign other.csr other.pem other -days 30

q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout self.key -out self.pem -days 30 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost
rm -f openssl.err
