/**
 * The one module that talks to the X.509 library (@peculiar/x509 over Node's WebCrypto): key conversion between
 * Node KeyObjects and CryptoKeys, certificate and CSR parsing, and certificate generation. No ASN.1 by hand.
 */
import 'reflect-metadata'; // @peculiar/x509 resolves its ASN.1 providers through tsyringe, which needs it
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, webcrypto, type KeyObject } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };

/** WebCrypto algorithm parameters for a key, as Node describes it. ECDSA P-256/P-384 and RSA are supported. */
export function keyAlgorithm(key: KeyObject): { importAlg: RsaHashedImportParams | EcKeyImportParams; signAlg: Algorithm | EcdsaParams } {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') {
    return { importAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, signAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as Algorithm };
  }
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return { importAlg: { name: 'ECDSA', namedCurve: 'P-256' }, signAlg: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams };
    if (curve === 'secp384r1') return { importAlg: { name: 'ECDSA', namedCurve: 'P-384' }, signAlg: { name: 'ECDSA', hash: 'SHA-384' } as EcdsaParams };
    throw new Error(`unsupported EC curve ${curve ?? '?'} (P-256 and P-384 are supported)`);
  }
  throw new Error(`unsupported key type ${type ?? '?'} (RSA and ECDSA are supported)`);
}

export async function toSigningKey(key: KeyObject): Promise<{ cryptoKey: CryptoKey; signAlg: Algorithm }> {
  const { importAlg, signAlg } = keyAlgorithm(key);
  const der = key.export({ format: 'der', type: 'pkcs8' });
  const cryptoKey = await webcrypto.subtle.importKey('pkcs8', der, importAlg, false, ['sign']) as unknown as CryptoKey;
  return { cryptoKey, signAlg };
}

export async function toPublicCryptoKey(key: KeyObject): Promise<CryptoKey> {
  const { importAlg } = keyAlgorithm(key);
  const der = key.export({ format: 'der', type: 'spki' });
  return await webcrypto.subtle.importKey('spki', der, importAlg, true, ['verify']) as unknown as CryptoKey;
}

/** A fresh workload key: ECDSA P-256, as istio-agent's default (ECC_SIGNATURE_ALGORITHM) is for speed here. */
export function generateWorkloadKey(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

export function privateKeyPem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'pkcs8' }).toString();
}

export function parsePrivateKeyPem(pem: string): KeyObject {
  return createPrivateKey(pem);
}

export function publicKeyOf(key: KeyObject): KeyObject {
  return createPublicKey(key);
}

/** Every certificate in a PEM bundle, in order. */
export function splitPemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((c) => `${c}\n`) ?? [];
}

/** A positive 128-bit serial number (RFC 5280 allows up to 20 octets; the top bit cleared keeps it positive). */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}
