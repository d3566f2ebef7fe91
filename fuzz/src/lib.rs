//! What the fuzz targets share: a decoded request goes through what the
//! pipeline does to it before the WAL (count, validate, convert).

use sightline_collector::signal::SignalKind;
use sightline_collector::validate::Limits;

pub fn admit<K: SignalKind>(mut request: K::Request) {
    let _ = K::count(&request);
    let _ = K::validate(&mut request, Limits { max_attribute_depth: 16 });
    let _ = K::convert(request);
}
