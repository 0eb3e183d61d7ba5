// A member account may require a signer: it names the keys it trusts (infra/member.yml TrustedSignerKeyIds, in
// the subscriber's STEMCELL_TRUSTED_SIGNERS), and its subscriber moves no launch template to an image whose
// tarball was not signed by one of them. The signer comes from "Image Ready" (source.signer), which the
// publisher sets only after ingest verified the signature and the builder checked the streamed bytes against it.
import type { ImageReady } from '#events/stemcell.ts';

/** Why the account refuses the image, or undefined when it trusts its signer (or requires none). */
export function signerRefusal(trusted: readonly string[] | undefined, image: ImageReady): string | undefined {
  if (!trusted || trusted.length === 0) return undefined;
  const what = `image ${image.imageId} (${image.stream} ${image.revision}, tarball sha256 ${image.source.sha256})`;
  const signer = image.source.signer;
  if (!signer) return `${what} is unsigned; this account accepts only images signed by ${trusted.join(', ')}`;
  if (trusted.includes(signer)) return undefined;
  return `${what} was signed by ${signer}, which this account does not trust (trusted: ${trusted.join(', ')})`;
}
