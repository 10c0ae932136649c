//! Subject transforms and weighted mappings, against nats-server's
//! documented results.

use super::*;

fn map(src: &str, dest: &str, subject: &str) -> String {
    let t = Transform::new(src, dest).unwrap();
    String::from_utf8(t.apply(subject.as_bytes())).unwrap()
}

fn err(src: &str, dest: &str) -> String {
    Transform::new(src, dest).unwrap_err().0
}

#[test]
fn transforms() {
    assert_eq!(map("foo", "bar", "foo"), "bar");
    assert_eq!(map("foo.*", "bar.$1", "foo.a"), "bar.a");
    assert_eq!(map("foo.*.*", "bar.$2.$1", "foo.a.b"), "bar.b.a");
    assert_eq!(
        map(
            "foo.*.*",
            "bar.{{wildcard(2)}}.{{ Wildcard( 1 ) }}",
            "foo.a.b"
        ),
        "bar.b.a"
    );
    assert_eq!(map("foo.>", "bar.>", "foo.a.b.c"), "bar.a.b.c");
    assert_eq!(map("foo.*.>", "bar.$1.>", "foo.a.b.c"), "bar.a.b.c");
    assert_eq!(map("*", "pre.$1.$name", "x"), "pre.x.$name");
    assert_eq!(
        map("a.*", "b.{{splitFromLeft(1,3)}}", "a.abcdef"),
        "b.abc.def"
    );
    assert_eq!(
        map("a.*", "b.{{splitFromRight(1,2)}}", "a.abcdef"),
        "b.abcd.ef"
    );
    assert_eq!(map("a.*", "b.{{splitFromLeft(1,9)}}", "a.abc"), "b.abc");
    assert_eq!(
        map("a.*", "b.{{sliceFromLeft(1,2)}}", "a.abcde"),
        "b.ab.cd.e"
    );
    assert_eq!(
        map("a.*", "b.{{sliceFromRight(1,2)}}", "a.abcde"),
        "b.a.bc.de"
    );
    assert_eq!(map("a.*", "b.{{split(1,-)}}", "a.-x--y-"), "b.x.y");
    // Partition: FNV-1a of the tokens modulo the bucket count.
    assert_eq!(fnv1a32(b""), 0x811c_9dc5);
    assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    let p = map("orders.*", "orders.{{partition(10,1)}}.$1", "orders.4242");
    let bucket = fnv1a32(b"4242") % 10;
    assert_eq!(p, format!("orders.{bucket}.4242"));
}

#[test]
fn refusals_in_nats_servers_words() {
    assert_eq!(
        err("foo.*", "bar"),
        "invalid mapping destination: not using all of the token wildcard(s) in bar"
    );
    assert_eq!(
        err("foo.*", "bar.$2"),
        "invalid mapping destination: wildcard index out of range in $2: [2]"
    );
    assert_eq!(
        err("foo.*", "bar.{{nope(1)}}"),
        "invalid mapping destination: unknown function in {{nope(1)}}"
    );
    assert_eq!(
        err("foo.*", "bar.{{partition(3)}}"),
        "invalid mapping destination: not enough arguments passed to the function in {{partition(3)}}"
    );
    assert_eq!(
        err("foo.*", "bar.{{wildcard(1,2)}}"),
        "invalid mapping destination: too many arguments passed to the function in {{wildcard(1,2)}}"
    );
    assert_eq!(
        err("foo.*", "bar.{{splitFromLeft(1,x)}}"),
        "invalid mapping destination: function argument is invalid or in the wrong format in {{splitFromLeft(1,x)}}"
    );
    assert_eq!(err("foo.*", "bar.*"), "invalid subject");
    assert_eq!(err("foo.>", "bar"), "invalid subject");
    assert_eq!(err("foo..x", "bar"), "invalid subject");
}

#[test]
fn weighted_mappings() {
    let d = |s: &str, w: u8| MapDest {
        subject: s.into(),
        weight: w,
    };
    let mut ms = Mappings::default();
    ms.add(Mapping::new("orders", &[d("a", 30), d("b", 70)]).unwrap());
    ms.add(Mapping::new("canary.*", &[d("new.$1", 10)]).unwrap());
    ms.add(Mapping::new("lossy", &[d("lossy", 50)]).unwrap());
    assert_eq!(ms.map(b"other", || 0), Mapped::Unchanged);
    assert_eq!(ms.map(b"orders", || 29), Mapped::To(b"a".to_vec()));
    assert_eq!(ms.map(b"orders", || 30), Mapped::To(b"b".to_vec()));
    assert_eq!(ms.map(b"orders", || 99), Mapped::To(b"b".to_vec()));
    // 10% to the new subject, the rest keeps its own.
    assert_eq!(ms.map(b"canary.x", || 5), Mapped::To(b"new.x".to_vec()));
    assert_eq!(ms.map(b"canary.x", || 50), Mapped::To(b"canary.x".to_vec()));
    // The source listed with 50: the other half is dropped.
    assert_eq!(ms.map(b"lossy", || 10), Mapped::To(b"lossy".to_vec()));
    assert_eq!(ms.map(b"lossy", || 60), Mapped::Dropped);
    assert_eq!(
        Mapping::new("x", &[d("a", 60), d("b", 60)]).unwrap_err().0,
        "total weight needs to be <= 100"
    );
    assert_eq!(
        Mapping::new("x", &[d("a", 10), d("a", 10)]).unwrap_err().0,
        "duplicate entry for \"a\""
    );
}
