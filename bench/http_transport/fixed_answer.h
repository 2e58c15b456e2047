#pragma once
// What both transport servers answer to every POST: the size and shape of `lathe serve`'s answer
// to a batch-1 request of the seed MLP (10 float32 outputs).
inline constexpr char kFixedAnswer[] =
    R"({"model_name":"bench","model_version":"1","outputs":[{"name":"output","shape":[1,10],)"
    R"("datatype":"FP32","data":[-3.1415927,2.7182817,0.5772157,-1.4142135,1.7320508,)"
    R"(-2.2360680,0.6931472,1.6180340,-0.3678794,4.6692016]}]})";
