#!/bin/sh
# LAB SIMULATION - runs inside a throwaway lab-image container: builds the staged package
# trees with dpkg-deb, indexes them with apt-ftparchive (a flat repository, the layout of
# NVIDIA's CUDA repositories) and signs the index with the lab's mirror key, generated
# once and kept in /gnupg.
#   $2/<name>_<version>/             staged trees (DEBIAN/control + files), one directory per suite
#   /www/<repo path>/               the repository served by the mirror container
#   /keys/                          the public key nodes are given (binary and armored)
set -eu
REPO="/www/$1"
PKGS="$2"
export GNUPGHOME=/gnupg
UID_NAME="deepseek lab mirror (LAB SIMULATION) <lab-mirror@invalid>"
chmod 700 "$GNUPGHOME"
if ! gpg --batch --list-secret-keys "$UID_NAME" >/dev/null 2>&1; then
    gpg --batch --quiet --passphrase '' --quick-generate-key "$UID_NAME" rsa3072 sign never
fi
rm -rf "$REPO"
mkdir -p "$REPO" /keys
for tree in "$PKGS"/*/; do
    dpkg-deb --root-owner-group -Zxz --build "$tree" "$REPO/" >/dev/null
done
cd "$REPO"
apt-ftparchive packages . > Packages
gzip -9nk Packages
apt-ftparchive \
    -o APT::FTPArchive::Release::Origin="deepseek-lab" \
    -o APT::FTPArchive::Release::Label="NVIDIA CUDA (LAB SIMULATION)" \
    -o APT::FTPArchive::Release::Architectures="amd64" \
    release . > Release
gpg --batch --yes --local-user "$UID_NAME" --clearsign -o InRelease Release
gpg --batch --yes --local-user "$UID_NAME" -abs -o Release.gpg Release
gpg --batch --yes --export "$UID_NAME" > /keys/deepseek-lab-mirror.gpg
gpg --batch --yes --armor --export "$UID_NAME" > /keys/deepseek-lab-mirror.asc
gpg --batch --with-colons --fingerprint "$UID_NAME" | awk -F: '/^fpr/ {print $10; exit}' > /keys/fingerprint
chmod -R a+rX "$REPO" /keys
echo "built $(ls "$REPO"/*.deb | wc -l) packages in $1"
