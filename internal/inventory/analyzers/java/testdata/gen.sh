#!/bin/sh
# Rebuilds the test archives from src/ with the JDK's jar tool (and zip for
# the EAR and WAR, which jar builds the same way). Run from this folder.
# src/commons-lang3/ holds META-INF/MANIFEST.MF and pom.properties taken
# unchanged from Debian's /usr/share/java/commons-lang3.jar (kitchen-sink
# image); the other metadata was written by hand in Maven's format.
set -eu
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mk() { # mk ARCHIVE MANIFEST DIR...
	a=$1 m=$2; shift 2
	if [ "$m" = - ]; then jar --create --no-manifest --file "$a" "$@"; else jar --create --file "$a" --manifest "$m" "$@"; fi
}
mkdir -p "$out/BOOT-INF/lib" "$out/WEB-INF/lib" "$out/lib"
mk "$out/BOOT-INF/lib/commons-lang3-3.12.0.jar" src/commons-lang3/META-INF/MANIFEST.MF -C src/commons-lang3 META-INF/maven
mk "$out/BOOT-INF/lib/util-2.1.0.jar" src/util.MF
mk "$out/BOOT-INF/lib/plain.jar" src/plain.MF
printf 'this is not a zip archive\n' > "$out/BOOT-INF/lib/garbage.jar"
mk app.jar - -C src/app META-INF -C "$out" BOOT-INF
# EAR → WAR → jar → jar: the innermost is one level too deep to be read.
mk "$out/too-deep.jar" - -C src/too-deep META-INF
cp "$out/too-deep.jar" "$out/WEB-INF/lib/"
mk "$out/WEB-INF/lib/deep.jar" - -C src/deep META-INF -C "$out" WEB-INF/lib/too-deep.jar
rm "$out/WEB-INF/lib/too-deep.jar"
mk "$out/lib/web.war" - -C src/web META-INF -C "$out" WEB-INF
mk shop.ear - -C "$out" lib
printf 'this is not a zip archive\n' > not-a-jar.jar
