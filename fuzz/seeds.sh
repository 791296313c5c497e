#!/bin/sh
# Writes a small hand-made seed corpus for each target into fuzz/corpus/<target>/ (not committed).
set -e
cd "$(dirname "$0")"
seed() { mkdir -p "corpus/$1"; printf '%b' "$3" > "corpus/$1/$2"; }

seed signatures stripe 't=1767225600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,v1=00\n\n\n\n\n\n\n\n{"id":"evt_1"}'
seed signatures slack '\n1767225600\nv0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503\n\n\n\n\n\ntoken=x&team_id=T1'
seed signatures standard '\n\n\nmsg_2KWPBgLlAfxdpx2AI54pPJ85f4W\n1767225600\nv1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,bm9wZQ==\n\n\n{"type":"ping"}'
seed signatures github '\n\n\n\n\n\nsha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17\nsha256=aGVsbG8=\n{}'

seed cron daily '\0\0\0\0\0\0\0\0\0030 2 * * *'
seed cron list '\1\2\3\4\5\6\7\0\1*/15 9-17 1,15 JAN-MAR,DEC MON-FRI'
seed cron either '\0\0\0\0\0\0\0\0\0050 0 13 * FRI'
seed cron never '\0\0\0\0\0\0\0\0\2 0 0 31 2 ?'
seed cron leap '\0\0\0\0\0\0\0\0\0070 0 29 2 SUN-SAT/2'

seed schedule_config cron '{"cron":"30 2 * * *","timezone":"Europe/Paris"}'
seed schedule_config interval '{"interval_seconds":3600}'
seed schedule_config once '{"at":"2026-03-29T09:00:00+02:00"}'

seed feed rss '<rss version="2.0"><channel><title>t</title><link>https://e.com</link><atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="next" href="/p2"/><item><guid>1</guid><title>a</title><pubDate>Mon, 02 Mar 2025 10:30:09 +0000</pubDate><category>x</category><dc:creator xmlns:dc="http://purl.org/dc/elements/1.1/">me</dc:creator></item><item><link>https://e.com/2</link><description><![CDATA[<b>b</b>]]></description></item></channel></rss>'
seed feed atom '<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><link rel="prev-archive" href="a.xml"/><entry><id>urn:1</id><title>a</title><updated>2025-03-02T10:30:09.5Z</updated><published>2025-03-02 10:30:09</published><author><name>n</name></author><category term="c"/><link href="https://e.com/1"/><content>x</content></entry></feed>'
seed feed rdf '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"><channel><title>t</title></channel><item rdf:about="https://e.com/1"><title>a</title><dc:date xmlns:dc="http://purl.org/dc/elements/1.1/">2025-03-02T10:30:09+01:00</dc:date></item></rdf:RDF>'

seed json_page paged '<https://api.e.com/items?page=1>; rel="prev", <https://api.e.com/items?page=3>; rel="next"\n/data\nid\nat\n{"data":[{"id":7,"at":"2025-03-02T10:00:00Z"},{"id":"b","at":1740909600},{"id":"c","at":1740909600000}]}'
seed json_page pointer '</x>; rel=last\n\n/meta/id\n/meta/at\n[{"meta":{"id":"a","at":"2025-03-02 10:30:09"}}]'

seed cursor ours '{"last_processed_event_id":"a","last_processed_event_timestamp":"2025-03-02T10:30:09.5Z","seen_ids":["a","b"],"enabled_at":"2025-03-01T00:00:00Z","poll_status":{"consecutive_failures":2,"last_error":"x","last_error_at":"2025-03-02T10:00:00Z"}}'
seed cursor seed '{"last_processed_event_id":42,"last_processed_event_timestamp":"2025-03-02 10:30:09","extra":[1]}'
seed cursor only_an_id '{"last_processed_event_id":"x"}'
