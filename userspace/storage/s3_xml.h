/* Just enough XML for S3's answers (ListObjectsV2 results, error documents): find an element's
 * text between a start and an end tag, and replace its entities. S3 writes no attributes on the
 * elements read here and escapes '<' and '&' in text, so plain tag search is exact. */
#ifndef SLUICE_S3_XML_H
#define SLUICE_S3_XML_H

#include <stdbool.h>

#include "util/buf.h"

/* Finds the first <tag>text</tag> in [p, end); the text's bounds in *ts, *te. */
bool s3_xml_find(const char *p, const char *end, const char *tag, const char **ts, const char **te);

/* Appends the text [s, e) to out with &amp; &lt; &gt; &quot; &apos; and &#N; / &#xH; (as UTF-8)
 * replaced. -1 on an unknown or malformed entity (out may then hold part of the text). */
int s3_xml_unescape(const char *s, const char *e, struct buf *out);

#endif
