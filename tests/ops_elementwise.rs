//! The row-wise small ops on every backend, bit for bit against the reference: elementwise add (out of
//! place, in place, a broadcast row), convert (all 9 dtype pairs; the same dtype is the strided copy)
//! and the embedding gather with ids checked on the device. Shapes straddle the 8-element run and the
//! 2048-element block chunk; strided layouts leave padding between rows that must stay untouched; the
//! inputs mix random values with NaN, ±inf, ±0, subnormals and values near the top of each dtype.

mod common;

use half::{bf16, f16};
use llama_kernels::backend::{Backend, DeviceValue, EmuBackend};
use llama_kernels::ops::add::{add, add_inplace};
use llama_kernels::ops::convert::{convert, copy_rows};
use llama_kernels::ops::embedding::{embedding, embedding_checked};
use llama_kernels::reference::{self, random_vec};
use llama_kernels::{strided_span, AddShape, ConvertShape, DType, Elem, EmbeddingShape, Error};

/// Each element's bits, with every NaN as one value: -0, infinities and subnormals compare exactly, and a
/// NaN result must be NaN (its payload is the hardware's: the GPU's canonical NaN is not the CPU's).
fn raw<T: Elem>(v: &[T]) -> Vec<u64> {
    v.iter()
        .map(|x| {
            if x.to_f32().is_nan() {
                u64::MAX
            } else {
                bytemuck::cast_slice::<T, u8>(std::slice::from_ref(x))
                    .iter()
                    .fold(0, |a, b| a << 8 | *b as u64)
            }
        })
        .collect()
}

/// Exactly the bytes (a copy moves NaN payloads unchanged).
fn bytes<T: bytemuck::Pod>(v: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

/// Random values of `T` with the edge values of its dtype planted every 7th element.
fn data<T: Elem>(len: usize, seed: u64) -> Vec<T> {
    let specials: Vec<T> = match T::DTYPE {
        DType::F32 => [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            1e-40,
            f32::MAX,
            65519.0,
            65520.0,
            3.0e38,
        ]
        .map(T::from_f32)
        .to_vec(),
        DType::F16 => [
            f16::NAN,
            f16::INFINITY,
            f16::NEG_INFINITY,
            f16::NEG_ZERO,
            f16::from_bits(1),
            f16::MAX,
        ]
        .map(|v| T::from_f32(v.to_f32()))
        .to_vec(),
        DType::BF16 => [
            bf16::NAN,
            bf16::INFINITY,
            bf16::NEG_INFINITY,
            bf16::NEG_ZERO,
            bf16::from_bits(1),
            bf16::MAX,
        ]
        .map(|v| T::from_f32(v.to_f32()))
        .to_vec(),
    };
    let mut v = random_vec::<T>(len, seed, 3.0);
    for (i, x) in v.iter_mut().enumerate().filter(|(i, _)| i % 7 == 3) {
        *x = specials[(i / 7 + seed as usize) % specials.len()];
    }
    v
}

/// (rows, d, padding after each row of the strided variant).
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 3),
    (3, 7, 1),
    (2, 8, 8),
    (5, 13, 5),
    (1, 2047, 1),
    (2, 2048, 8),
    (3, 2049, 3),
    (1, 4100, 0),
];

fn add_case<T: Elem + DeviceValue, B: Backend>(backend: &B) {
    for (i, &(rows, d, pad)) in SHAPES.iter().enumerate() {
        let seed = 100 + i as u64;
        let shapes = [
            AddShape::contiguous(rows, d),
            AddShape {
                rows,
                d,
                a_row_stride: d + pad,
                b_row_stride: 0,
                out_row_stride: d + 2 * pad + 1,
            },
        ];
        for shape in shapes {
            let len = |s| strided_span(rows, d, s).unwrap();
            let a = data::<T>(len(shape.a_row_stride), seed);
            let b = data::<T>(len(shape.b_row_stride), seed ^ 0x51);
            let out0 = random_vec::<T>(len(shape.out_row_stride), seed ^ 0x77, 1.0);
            let mut want = out0.clone();
            reference::add(&a, &b, &mut want, shape).unwrap();
            let (a_d, b_d) = (backend.upload(&a).unwrap(), backend.upload(&b).unwrap());
            let mut out = backend.upload(&out0).unwrap();
            add(backend, &a_d, &b_d, &mut out, shape).unwrap();
            assert_eq!(raw(&backend.download(&out).unwrap()), raw(&want), "{shape:?}");
            // In place: acc = a + b where acc holds a at out's stride.
            let inplace = AddShape {
                a_row_stride: shape.out_row_stride,
                ..shape
            };
            let mut acc0 = out0.clone();
            for r in 0..rows {
                for j in 0..d {
                    acc0[r * inplace.out_row_stride + j] = a[r * shape.a_row_stride + j];
                }
            }
            let mut want = acc0.clone();
            reference::add(&acc0.clone(), &b, &mut want, inplace).unwrap();
            let mut acc = backend.upload(&acc0).unwrap();
            add_inplace(backend, &mut acc, &b_d, inplace).unwrap();
            assert_eq!(
                raw(&backend.download(&acc).unwrap()),
                raw(&want),
                "in place {inplace:?}"
            );
        }
    }
}

fn convert_pair<In: Elem + DeviceValue, Out: Elem + DeviceValue, B: Backend>(backend: &B) {
    for (i, &(rows, d, pad)) in SHAPES.iter().enumerate() {
        let seed = 200 + i as u64;
        for shape in [
            ConvertShape::contiguous(rows, d),
            ConvertShape {
                rows,
                d,
                x_row_stride: d + pad + 1,
                out_row_stride: d + pad,
            },
        ] {
            let x = data::<In>(strided_span(rows, d, shape.x_row_stride).unwrap(), seed);
            let out0 = random_vec::<Out>(strided_span(rows, d, shape.out_row_stride).unwrap(), seed ^ 9, 1.0);
            let mut want = out0.clone();
            reference::convert(&x, &mut want, shape).unwrap();
            let x_d = backend.upload(&x).unwrap();
            let mut out = backend.upload(&out0).unwrap();
            convert(backend, &x_d, &mut out, shape).unwrap();
            let got = backend.download(&out).unwrap();
            assert_eq!(raw(&got), raw(&want), "{:?} -> {:?} {shape:?}", In::DTYPE, Out::DTYPE);
        }
    }
}

/// `copy_rows`, the strided copy: [`convert`] within one dtype, the bits moved as they are.
fn copy_case<T: Elem + DeviceValue, B: Backend>(backend: &B) {
    let (rows, d) = (4, 19);
    let shape = ConvertShape {
        rows,
        d,
        x_row_stride: 0,
        out_row_stride: 24,
    };
    let x = data::<T>(d, 400);
    let out0 = random_vec::<T>(strided_span(rows, d, 24).unwrap(), 401, 1.0);
    let mut want = out0.clone();
    reference::convert(&x, &mut want, shape).unwrap();
    let x_d = backend.upload(&x).unwrap();
    let mut out = backend.upload(&out0).unwrap();
    copy_rows(backend, &x_d, &mut out, shape).unwrap();
    assert_eq!(bytes(&backend.download(&out).unwrap()), bytes(&want));
}

fn convert_case<B: Backend>(backend: &B) {
    convert_pair::<f32, f32, B>(backend);
    convert_pair::<f32, f16, B>(backend);
    convert_pair::<f32, bf16, B>(backend);
    convert_pair::<f16, f32, B>(backend);
    convert_pair::<f16, f16, B>(backend);
    convert_pair::<f16, bf16, B>(backend);
    convert_pair::<bf16, f32, B>(backend);
    convert_pair::<bf16, f16, B>(backend);
    convert_pair::<bf16, bf16, B>(backend);
    copy_case::<f16, B>(backend);
    copy_case::<f32, B>(backend);
}

fn embedding_case<T: Elem + DeviceValue, B: Backend>(backend: &B) {
    let vocab = 37;
    for (i, &(tokens, d, pad)) in SHAPES.iter().enumerate() {
        let seed = 300 + i as u64;
        for shape in [
            EmbeddingShape::contiguous(tokens, d, vocab),
            EmbeddingShape {
                tokens,
                d,
                vocab,
                table_row_stride: d + pad + 2,
                out_row_stride: d + pad,
            },
        ] {
            let table = data::<T>(strided_span(vocab, d, shape.table_row_stride).unwrap(), seed);
            // Valid ids, both ends of the vocabulary, and (from the second shape on) bad ones.
            let ids: Vec<i32> = (0..tokens)
                .map(|t| match (t + i) % 5 {
                    0 => 0,
                    1 => vocab as i32 - 1,
                    2 if i > 0 => [-1, vocab as i32, i32::MAX, i32::MIN][t % 4],
                    _ => ((t * 7 + i) % vocab) as i32,
                })
                .collect();
            let out0 = random_vec::<T>(strided_span(tokens, d, shape.out_row_stride).unwrap(), seed ^ 5, 1.0);
            let mut want = out0.clone();
            let want_status = reference::embedding(&table, &ids, &mut want, shape).unwrap();
            let (table_d, ids_d) = (backend.upload(&table).unwrap(), backend.upload(&ids).unwrap());
            let mut out = backend.upload(&out0).unwrap();
            let mut status = backend.alloc_poisoned::<i32>(tokens).unwrap();
            embedding(backend, &table_d, &ids_d, &mut out, &mut status, shape).unwrap();
            assert_eq!(raw(&backend.download(&out).unwrap()), raw(&want), "{shape:?}");
            assert_eq!(backend.download(&status).unwrap(), want_status, "{shape:?}");
            let mut out = backend.upload(&out0).unwrap();
            let r = embedding_checked(backend, &table_d, &ids_d, &mut out, shape);
            let bad: Vec<usize> = (0..tokens).filter(|&t| want_status[t] != 0).collect();
            match bad.first() {
                None => r.unwrap(),
                Some(&first) => assert_eq!(
                    r,
                    Err(Error::IdOutOfRange {
                        op: "embedding",
                        count: bad.len(),
                        first,
                        vocab
                    }),
                    "{shape:?}"
                ),
            }
            assert_eq!(raw(&backend.download(&out).unwrap()), raw(&want), "checked {shape:?}");
        }
    }
}

fn add_f32<B: Backend>(b: &B) {
    add_case::<f32, B>(b)
}
fn add_f16<B: Backend>(b: &B) {
    add_case::<f16, B>(b)
}
fn add_bf16<B: Backend>(b: &B) {
    add_case::<bf16, B>(b)
}
fn embedding_f32<B: Backend>(b: &B) {
    embedding_case::<f32, B>(b)
}
fn embedding_bf16<B: Backend>(b: &B) {
    embedding_case::<bf16, B>(b)
}
fn embedding_f16<B: Backend>(b: &B) {
    embedding_case::<f16, B>(b)
}
backend_tests!(add_matches_reference_f32, add_f32);
backend_tests!(add_matches_reference_f16, add_f16);
backend_tests!(add_matches_reference_bf16, add_bf16);
backend_tests!(convert_matches_reference_every_pair, convert_case);
backend_tests!(embedding_matches_reference_f32, embedding_f32);
backend_tests!(embedding_matches_reference_f16, embedding_f16);
backend_tests!(embedding_matches_reference_bf16, embedding_bf16);

/// Every precondition is an error, never a launch: lengths, an output row stride under d, overlaps, the
/// in-place stride rule, sizes past the limits; zero sizes are no-ops, except that an embedding of
/// `d == 0` still reports its ids.
#[test]
fn elementwise_errors_and_zero_sizes() {
    let backend = EmuBackend::new();
    let x = backend.upload(&random_vec::<bf16>(64, 1, 1.0)).unwrap();
    let y = backend.upload(&random_vec::<bf16>(64, 2, 1.0)).unwrap();
    let mut out = backend.upload(&random_vec::<bf16>(64, 3, 1.0)).unwrap();
    let s = AddShape::contiguous(8, 8);
    add(&backend, &x, &y, &mut out, s).unwrap();
    let e = add(&backend, &x, &y, &mut out, AddShape::contiguous(8, 7));
    assert!(
        matches!(
            e,
            Err(Error::ShapeMismatch {
                tensor: "a",
                expected: 56,
                actual: 64,
                ..
            })
        ),
        "{e:?}"
    );
    let e = add(&backend, &x, &y, &mut out, AddShape { out_row_stride: 7, ..s });
    assert!(matches!(e, Err(Error::InvalidShape { .. })), "{e:?}");
    let e = add_inplace(&backend, &mut out, &y, AddShape { a_row_stride: 9, ..s });
    assert!(matches!(e, Err(Error::InvalidArgument { .. })), "{e:?}");
    // Partial overlaps (views the borrow checker cannot see).
    let big = backend.upload(&random_vec::<bf16>(128, 4, 1.0)).unwrap();
    // SAFETY: deliberately overlapping views of one emulator buffer, to test the checks.
    let (a, mut o) = unsafe { (big.raw_view_mut(big.addr(), 64), big.raw_view_mut(big.addr() + 2, 64)) };
    assert!(matches!(add(&backend, &a, &y, &mut o, s), Err(Error::Aliasing { .. })));
    // SAFETY: as above.
    let mut same = unsafe { big.raw_view_mut(big.addr(), 64) };
    add(&backend, &a, &y, &mut same, s).unwrap(); // exactly a: in place is fine
    let mut o32 = backend.upload(&random_vec::<f32>(64, 5, 1.0)).unwrap();
    let e = convert(&backend, &x, &mut o32, ConvertShape::contiguous(8, 9));
    assert!(matches!(e, Err(Error::ShapeMismatch { .. })), "{e:?}");
    // SAFETY: as above.
    let mut o_alias = unsafe { big.raw_view_mut(big.addr() + 32, 64) };
    let e = convert(&backend, &a, &mut o_alias, ConvertShape::contiguous(8, 8));
    assert!(matches!(e, Err(Error::Aliasing { .. })), "{e:?}");
    assert!(matches!(
        convert(&backend, &x, &mut o32, ConvertShape::contiguous(1, i32::MAX as usize)),
        Err(Error::ShapeMismatch { .. } | Error::SizeOverflow { .. })
    ));
    // Zero sizes: no-ops on empty buffers.
    let empty = backend.alloc_zeros::<bf16>(0).unwrap();
    let mut empty_out = backend.alloc_zeros::<bf16>(0).unwrap();
    add(&backend, &empty, &empty, &mut empty_out, AddShape::contiguous(0, 5)).unwrap();
    add(&backend, &empty, &empty, &mut empty_out, AddShape::contiguous(5, 0)).unwrap();
    convert(&backend, &empty, &mut empty_out, ConvertShape::contiguous(3, 0)).unwrap();
    // Embedding: d == 0 writes the status; wrong id count; a bad vocab.
    let ids = backend.upload(&[0i32, 5, -2]).unwrap();
    let mut status = backend.alloc_poisoned::<i32>(3).unwrap();
    embedding(
        &backend,
        &empty,
        &ids,
        &mut empty_out,
        &mut status,
        EmbeddingShape::contiguous(3, 0, 5),
    )
    .unwrap();
    assert_eq!(backend.download(&status).unwrap(), vec![0, 1, 1]);
    let e = embedding_checked(
        &backend,
        &empty,
        &ids,
        &mut empty_out,
        EmbeddingShape::contiguous(3, 0, 5),
    );
    assert_eq!(
        e,
        Err(Error::IdOutOfRange {
            op: "embedding",
            count: 2,
            first: 1,
            vocab: 5
        })
    );
    let e = embedding_checked(&backend, &x, &ids, &mut out, EmbeddingShape::contiguous(2, 8, 8));
    assert!(matches!(e, Err(Error::ShapeMismatch { tensor: "out", .. })), "{e:?}");
    let e = embedding_checked(&backend, &x, &ids, &mut out, EmbeddingShape::contiguous(3, 8, 8));
    assert!(
        matches!(
            e,
            Err(Error::ShapeMismatch {
                tensor: "out",
                expected: 24,
                ..
            })
        ),
        "{e:?}"
    );
}
