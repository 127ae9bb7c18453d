// A throwaway certificate authority for the node TLS suites, made with the openssl CLI (the
// same certificates as tests/support/tls_ca.py makes for the Python suites).
//
//   const ca = makeTestCA();                         // CA in a fresh temp directory
//   const good = ca.issue('server');                 // CN=localhost, SAN DNS:localhost, IP:127.0.0.1
//   const other = ca.issue('other', { cn: 'localhost-2' });
//   const rogue = ca.selfSigned('rogue');            // not from the CA
//   fs.readFileSync(ca.cert)                         // for ws's / https's `ca:` option
//   good.spkiSha256Base64()                          // for --ignore-certificate-errors-spki-list
//   ca.cleanup();
//
// Keys are EC P-256. `issue` signs with `openssl ca`, valid from an hour ago for `days` days
// (or 2020-01-01..02 with `expired: true`).
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const OPENSSL = process.env.SB_OPENSSL || 'openssl';

function openssl(args, input) {
  try {
    return execFileSync(OPENSSL, args, { input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 30000 });
  } catch (e) {
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString().slice(-800) ?? e.message}`);
  }
}

function gentime(d) {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

function san(dns, ips) {
  return [...dns.map((d) => `DNS:${d}`), ...ips.map((i) => `IP:${i}`)].join(',');
}

function certObject(name, cert, key, serial, cn) {
  return {
    name, cert, key, serial, cn,
    pem: () => fs.readFileSync(cert),
    keyPem: () => fs.readFileSync(key),
    // base64(SHA-256(SubjectPublicKeyInfo DER)), as `openssl x509 -pubkey -noout | openssl pkey
    // -pubin -outform der | openssl dgst -sha256 -binary | base64` prints it.
    spkiSha256Base64() {
      const pub = openssl(['x509', '-in', cert, '-pubkey', '-noout']);
      const der = openssl(['pkey', '-pubin', '-outform', 'der'], pub);
      return crypto.createHash('sha256').update(der).digest('base64');
    },
  };
}

export function makeTestCA({ dir, name = 'Switchboard test CA' } = {}) {
  const own = !dir;
  const root = dir || fs.mkdtempSync(path.join(os.tmpdir(), 'sb-tls-ca-'));
  fs.mkdirSync(path.join(root, 'newcerts'), { recursive: true });
  fs.writeFileSync(path.join(root, 'index.txt'), '');
  const cert = path.join(root, 'ca.pem');
  const key = path.join(root, 'ca.key');
  let nextSerial = 0x1000;
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', key, '-out', cert, '-subj', `/CN=${name}`,
    '-days', '30', '-set_serial', String(nextSerial++),
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash']);
  const config = path.join(root, 'ca.cnf');
  fs.writeFileSync(config, [
    '[ca]', 'default_ca = test_ca', '[test_ca]', `dir = ${root}`,
    'database = $dir/index.txt', 'new_certs_dir = $dir/newcerts', `certificate = ${cert}`,
    `private_key = ${key}`, 'serial = $dir/serial', 'default_md = sha256',
    'policy = policy_any', 'unique_subject = no', 'email_in_dn = no', 'copy_extensions = none',
    '[policy_any]', 'commonName = supplied', ''].join('\n'));

  return {
    dir: root, cert, key,
    issue(certName, { cn = 'localhost', dns = ['localhost'], ips = ['127.0.0.1'], days = 30,
      expired = false } = {}) {
      const stem = path.join(root, certName);
      openssl(['req', '-new', ...ec, '-keyout', `${stem}.key`, '-out', `${stem}.csr`,
        '-subj', `/CN=${cn}`]);
      const serial = nextSerial++;
      fs.writeFileSync(path.join(root, 'serial'), `${serial.toString(16).toUpperCase()}\n`);
      const ext = [
        '[v3]', 'basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature',
        'extendedKeyUsage = serverAuth', 'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid'];
      if (dns.length || ips.length) ext.push(`subjectAltName = ${san(dns, ips)}`);
      fs.writeFileSync(`${stem}.ext`, `${ext.join('\n')}\n`);
      const now = Date.now();
      const start = expired ? new Date(Date.UTC(2020, 0, 1)) : new Date(now - 3600e3);
      const end = expired ? new Date(Date.UTC(2020, 0, 2)) : new Date(now + days * 86400e3);
      openssl(['ca', '-batch', '-config', config, '-in', `${stem}.csr`, '-out', `${stem}.pem`,
        '-notext', '-startdate', gentime(start), '-enddate', gentime(end),
        '-extfile', `${stem}.ext`, '-extensions', 'v3']);
      return certObject(certName, `${stem}.pem`, `${stem}.key`, serial, cn);
    },
    selfSigned(certName, { cn = 'localhost', dns = ['localhost'], ips = ['127.0.0.1'], days = 30 } = {}) {
      const stem = path.join(root, certName);
      const serial = nextSerial++;
      const args = ['req', '-x509', ...ec, '-keyout', `${stem}.key`, '-out', `${stem}.pem`,
        '-subj', `/CN=${cn}`, '-days', String(days), '-set_serial', String(serial)];
      if (dns.length || ips.length) args.push('-addext', `subjectAltName=${san(dns, ips)}`);
      openssl(args);
      return certObject(certName, `${stem}.pem`, `${stem}.key`, serial, cn);
    },
    cleanup() {
      if (own) fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
